"""The non-chat interfaces: text to image, text to speech, speech recognition, text
classification and moderation, image classification (plain and zero-shot), fill-mask.

    open_task(TASK, MODEL) ─► the registry's `tasks` checked ─► a deployment that serves TASK
        ─► its backend's key, endpoint and HTTP client ─► the provider's task wire format

`select.py` chooses the model and deployment, `openai_tasks.py` and `hf_tasks.py` speak the
wire formats, `media.py` checks the files that go in, `outputs.py` names the files that come out.
"""

from __future__ import annotations

from modelctl.tasks.results import Audio, Fill, Image, Label, Segment, Transcript
from modelctl.tasks.select import TASK_KINDS, TaskClient, open_task

__all__ = ["Audio", "Fill", "Image", "Label", "Segment", "TASK_KINDS", "TaskClient", "Transcript", "open_task"]
