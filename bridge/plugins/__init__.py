"""Hosting the producer's plugins (VST3, AU on macOS) and pedalboard's built-ins in effect chains.

- :mod:`bridge.plugins.scan`: find and describe plugins, each loaded in a child process with a timeout
- :mod:`bridge.plugins.chain`: build and run a chain (a stem's or the master's) over audio
- :mod:`bridge.plugins.builtins`: the built-in effects' names (a vocabulary, no pedalboard import)

The chain models themselves (:class:`bridge.project.schema.FxSlot`) live in the project schema.
"""
