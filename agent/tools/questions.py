"""The `ask_user_question` tool: an output tool, so calling it ends the turn with the questions."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Question(BaseModel):
    """One question for the user, optionally with suggested answers."""

    question: str
    options: list[str] = Field(default_factory=list)


class UserQuestions(BaseModel):
    """The questions a run ended with; the user's next message answers them."""

    questions: list[Question] = Field(min_length=1)


def ask_user_question(questions: list[Question]) -> UserQuestions:
    """Ask the user one or more questions and end this turn until they answer.

    Args:
        questions: The questions, each with optional suggested answers.
    """
    return UserQuestions(questions=questions)
