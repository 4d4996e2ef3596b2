"""tuneforge's scoring route: a reward model's score of conversations (no cloud service has one;
the request and answer follow OpenAI's conventions, as the embeddings API's list of numbers).

``POST /v1/score`` takes ``{"model": ..., "conversations": [[messages...], ...]}`` where each
conversation is OpenAI chat messages ending with the assistant's answer to score, and answers
``{"object": "list", "model": ..., "data": [{"object": "score", "index": i, "score": x}]}``.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from tuneforge.api.openai import Project, Services, model_errors
from tuneforge.api.openai_schema import OpenAIObject, StrictRequest, raise_first
from tuneforge.data.checks import LineIssues
from tuneforge.data.records import Conversation
from tuneforge.data.turns import openai_messages

router = APIRouter(prefix="/v1", tags=["score"])
MAX_CONVERSATIONS = 256


class ScoreRequest(StrictRequest):
    model: str
    conversations: list[Any] = Field(min_length=1, max_length=MAX_CONVERSATIONS)

    def parsed(self) -> list[Conversation]:
        issues = LineIssues(line=0)
        parsed = [
            openai_messages(messages, f"conversations[{i}]", issues, ending="model")
            for i, messages in enumerate(self.conversations)
        ]
        raise_first(issues)
        return [c for c in parsed if c is not None]


class Score(BaseModel):
    object: Literal["score"] = "score"
    index: int
    score: float


class ScoreList(OpenAIObject):
    object: Literal["list"] = "list"
    model: str
    data: list[Score]


@router.post("/score", response_model=ScoreList)
def score(body: ScoreRequest, project: Project, service: Services) -> ScoreList:
    conversations = body.parsed()
    with model_errors(body.model, {}):
        scores = service.generation.score(project, body.model, conversations)
    return ScoreList(model=body.model, data=[Score(index=i, score=s) for i, s in enumerate(scores)])
