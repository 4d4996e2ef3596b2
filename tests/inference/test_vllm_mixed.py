"""The vLLM backend's mixed batches on a CPU, up to the engine: ``vllm.LLM`` is a recording fake
(vLLM needs a GPU), everything above it is the real backend."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from typing import ClassVar

import pytest

from tests.inference.conftest import PROMPTS
from tuneforge.data.records import Conversation, Turn
from tuneforge.data.tokenize import prompt_ids
from tuneforge.errors import InvalidArgument
from tuneforge.inference.types import GenerationParams, ModelTarget, Request


@dataclass
class SamplingParams:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    max_tokens: int = 16
    stop: list | None = None
    stop_token_ids: list = field(default_factory=list)
    seed: int | None = None
    logprobs: int | None = None


@dataclass
class LoRARequest:
    lora_name: str
    lora_int_id: int
    lora_path: str


class FakeLLM:
    """Answers each prompt with its first ``max_tokens`` ids; records every call."""

    instances: ClassVar[list[FakeLLM]] = []

    def __init__(self, model: str, **kwargs) -> None:
        self.model, self.kwargs, self.calls = model, kwargs, []
        self.llm_engine = types.SimpleNamespace(
            model_config=types.SimpleNamespace(max_model_len=512)
        )
        FakeLLM.instances.append(self)

    def generate(self, inputs, sampling_params, lora_request=None, use_tqdm=True):
        self.calls.append((inputs, sampling_params, lora_request))
        if not isinstance(sampling_params, list):  # one for every input, as vLLM takes it
            sampling_params = [sampling_params] * len(inputs)
        outputs = []
        for request, params in zip(inputs, sampling_params, strict=True):
            ids = request["prompt_token_ids"][: params.max_tokens]
            candidate = types.SimpleNamespace(
                token_ids=ids,
                text=f"{len(ids)}",
                finish_reason="length",
                logprobs=None if params.logprobs is None else [fake_logprobs(i) for i in ids],
            )
            outputs.append(
                types.SimpleNamespace(
                    outputs=[candidate] * params.n, prompt_token_ids=request["prompt_token_ids"]
                )
            )
        return outputs


def fake_logprobs(chosen: int) -> dict:
    """vLLM's shape: the chosen token (ranked 3rd here) beside the top two, 7 and 8."""
    entry = types.SimpleNamespace
    return {
        chosen: entry(logprob=-2.0, rank=3, decoded_token=f"t{chosen}"),
        7: entry(logprob=-0.5, rank=1, decoded_token="t7"),
        8: entry(logprob=-1.0, rank=2, decoded_token="t8"),
    }


@pytest.fixture
def vllm_backend(monkeypatch):
    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams = FakeLLM, SamplingParams
    lora = types.ModuleType("vllm.lora")
    request = types.ModuleType("vllm.lora.request")
    request.LoRARequest = LoRARequest
    for name, module in (("vllm", vllm), ("vllm.lora", lora), ("vllm.lora.request", request)):
        monkeypatch.setitem(sys.modules, name, module)
    FakeLLM.instances.clear()
    from tuneforge.inference.vllm_backend import VLLMBackend

    return VLLMBackend()


def test_adapters_and_the_base_go_to_the_engine_in_one_call(
    vllm_backend, base, adapters, tokenizer
):
    tuned = [ModelTarget(a.name, base.base_source, adapter_path=a) for a in adapters[:3]]
    requests = [
        Request(base, PROMPTS[0], GenerationParams(max_output_tokens=4)),
        Request(tuned[0], PROMPTS[1], GenerationParams(temperature=0.8, top_p=0.9, n=2)),
        Request(tuned[1], Conversation((Turn("user", "good " * 600),)), GenerationParams()),
        Request(tuned[2], PROMPTS[2], GenerationParams(max_output_tokens=3, stop=("x",))),
        Request(tuned[0], PROMPTS[0], GenerationParams(max_output_tokens=5)),
    ]
    outcomes = vllm_backend.generate_many(requests)

    (engine,) = FakeLLM.instances
    assert engine.model == base.base_source and engine.kwargs["enable_lora"]
    (call,) = engine.calls  # one engine call, the over-long prompt left out
    inputs, sampling, loras = call
    kept = [requests[i] for i in (0, 1, 3, 4)]
    assert [i["prompt_token_ids"] for i in inputs] == [
        prompt_ids(r.prompt, tokenizer) for r in kept
    ]
    assert [s.max_tokens for s in sampling] == [4, 256, 3, 5]
    assert (sampling[1].temperature, sampling[1].top_p, sampling[1].n) == (0.8, 0.9, 2)
    assert sampling[2].stop == ["x"]
    assert loras[0] is None
    assert loras[1].lora_path == str(adapters[0].resolve())
    assert loras[1] == loras[3] and loras[2].lora_path == str(adapters[2].resolve())
    assert isinstance(outcomes[2], InvalidArgument)
    assert "reads at most 512" in str(outcomes[2])
    assert [o.completions[0].output_tokens for o in (outcomes[0], outcomes[3], outcomes[4])] == [
        4,
        3,
        5,
    ]
    assert len(outcomes[1].completions) == 2


@pytest.mark.gpu
def test_the_serving_benchmark_runs_on_vllm(tmp_path):
    """On a GPU machine: the serving benchmark's three scenarios through the vLLM backend."""
    import subprocess
    from pathlib import Path

    pytest.importorskip("vllm")
    script = Path(__file__).parents[2] / "benchmarks" / "serve_throughput.py"
    command = [sys.executable, str(script), "--backend", "vllm", "--model-shape", "tiny"]
    done = subprocess.run([*command, "--requests", "64"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    for scenario in ("single", "mixed", "per-model"):
        (row,) = [line for line in lines if line.startswith(f"{scenario} ")]
        assert float(row.split()[1]) > 0  # output tokens/s


def test_logprobs_come_from_the_engine_ranked(vllm_backend, base):
    result = vllm_backend.generate(
        base, PROMPTS[0], GenerationParams(max_output_tokens=3, logprobs=2)
    )
    (engine,) = FakeLLM.instances
    sampling = engine.calls[0][1]
    assert (sampling[0] if isinstance(sampling, list) else sampling).logprobs == 2
    logprobs = result.completions[0].logprobs
    assert len(logprobs) == 3
    assert (logprobs[0].chosen.text, logprobs[0].chosen.logprob) == (
        f"t{logprobs[0].chosen.token_id}",
        -2.0,
    )
    assert [(c.token_id, c.logprob) for c in logprobs[0].top] == [(7, -0.5), (8, -1.0)]
    with pytest.raises(InvalidArgument, match="streamed"):
        vllm_backend.stream(base, PROMPTS[0], GenerationParams(logprobs=0))


def test_a_request_the_engine_cannot_serve_fails_alone(vllm_backend, base):
    """Structured output is refused on vLLM for now: that request alone, not its batch."""
    outcomes = vllm_backend.generate_many(
        [
            Request(base, PROMPTS[0], GenerationParams(max_output_tokens=2)),
            Request(base, PROMPTS[1], GenerationParams(json_schema='{"type":"object"}')),
        ]
    )
    assert outcomes[0].completions[0].output_tokens == 2
    assert isinstance(outcomes[1], InvalidArgument) and outcomes[1].param == "json_schema"
