"""Feedback kept with the data (``<table>__feedback``) and what a table learns from it (``table.tune``)."""

from hybrid.feedback.store import MAX_LABEL, SCHEMA, Feedback, FeedbackLog, feedback_table_name

__all__ = ["MAX_LABEL", "SCHEMA", "Feedback", "FeedbackLog", "feedback_table_name"]
