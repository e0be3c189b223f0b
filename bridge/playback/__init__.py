"""Audio playback: the project's mix through PortAudio, and the clock the playhead follows.

Modules: player (the output devices and :class:`~bridge.playback.player.AudioPlayer`, whose
PortAudio callback copies a prepared mix; its position is the sample reaching the speaker now),
controller (the Session's side: rendering the mix, opening the player, following it), events (what
the Session forwards). Nothing is imported here, and no module of the package imports sounddevice
until a player opens or the devices are listed.
"""
