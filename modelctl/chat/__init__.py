"""The conversation loop: one-shot and interactive chat, stop handling, streamed rendering.

Modules: `session` (a conversation with a backend: ask, undo, regen, save/load), `resolve`
(MODEL argument -> local GGUF, template and defaults -> backend), `stops` (stop strings over a
stream), `render` (incremental Markdown in a terminal), `repl` (the interactive loop).
Nothing heavy is imported here.
"""
