"""stembridge desktop app (PySide6), a thin view over bridge.session."""
