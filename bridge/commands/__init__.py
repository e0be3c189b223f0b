"""Command-line commands that drive the whole application (the top layer, with :mod:`bridge.cli`).

A command that needs the app model (:class:`bridge.session.Session`) cannot live in the package it
is about when that package sits below the session: ``stembridge preview`` opens a Session, which
owns the preview scheduler, so it lives here as :mod:`bridge.commands.preview` and not in
:mod:`bridge.preview`. Commands that only need their own layer and those below (``stembridge fx``
in :mod:`bridge.plugins.cli`, ``looks`` and ``models`` in :mod:`bridge.visuals`, the rhythm options
in :mod:`bridge.analysis.rhythm_cli`) stay beside their code. See :mod:`bridge.vocab` for the whole
layer order.
"""
