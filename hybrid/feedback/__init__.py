"""Feedback kept with the data (``<table>__feedback``) and what a table learns from it (``table.tune``).

Importing this package needs no optional extra; training needs ``hybridsearch[tune]`` (torch).
"""

from hybrid.feedback.judgments import Judgments
from hybrid.feedback.store import MAX_LABEL, SCHEMA, Feedback, FeedbackLog, feedback_table_name
from hybrid.feedback.tune import Decision, TuneReport, TuneSettings

__all__ = [
    "MAX_LABEL",
    "SCHEMA",
    "Decision",
    "Feedback",
    "FeedbackLog",
    "Judgments",
    "TuneReport",
    "TuneSettings",
    "feedback_table_name",
]
