"""The registry of tuning methods: what every surface reads instead of listing methods."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from tuneforge.engine.methods import all_methods, get_method, register_method
from tuneforge.engine.methods.distillation.config import DistillationHyperparameters
from tuneforge.engine.methods.preference.config import PreferenceHyperparameters
from tuneforge.engine.spec import Hyperparameters, TuningSpec, resolve_hyperparameters
from tuneforge.errors import InvalidArgument
from tuneforge.service import JobRequest
from tuneforge.service.jobs import checked_hyperparameters


def test_the_built_in_methods_in_the_order_surfaces_list_them():
    names = ["supervised", "preference", "distillation", "reward", "reinforcement"]
    assert [m.name for m in all_methods()] == names
    assert [m.openai_type for m in all_methods()] == ["supervised", "dpo", None, None, names[-1]]
    assert [m.scores_only for m in all_methods()] == [False, False, False, True, False]
    assert get_method("reinforcement").required == ("grader",)
    assert get_method("distillation").needs_teacher
    assert get_method("preference").own_hyperparameters() == ["beta"]
    assert get_method("distillation").own_hyperparameters() == ["divergence"]
    assert get_method("supervised").own_hyperparameters() == []


def test_an_unknown_method_is_a_400_naming_the_known_ones():
    with pytest.raises(InvalidArgument, match="unknown tuning method 'rlhf'") as caught:
        get_method("rlhf")
    assert caught.value.param == "method"
    assert "supervised, preference, distillation" in str(caught.value)


def test_a_method_is_registered_once():
    with pytest.raises(ValueError, match="registered twice"):
        register_method(get_method("supervised"))


def test_each_method_takes_only_its_own_hyperparameters():
    with pytest.raises(InvalidArgument, match="unknown hyperparameter for the supervised") as e:
        checked_hyperparameters(get_method("supervised"), {"beta": 0.2})
    assert e.value.param == "beta" and "it takes epochs, batch_size" in str(e.value)
    assert checked_hyperparameters(get_method("preference"), {"beta": 0.2}).beta == 0.2
    with pytest.raises(InvalidArgument, match=r"hyperparameters\.divergence"):
        checked_hyperparameters(get_method("distillation"), {"divergence": "l2"})


@pytest.mark.parametrize(
    ("name", "value"),
    [("epochs", 0), ("epochs", 10_000), ("batch_size", 100_000), ("learning_rate", 5.0),
     ("learning_rate_multiplier", 1e6), ("max_seq_length", 1 << 30), ("warmup_ratio", 1.0)],
)  # fmt: skip
def test_values_out_of_bounds_are_refused_naming_them(name, value):
    with pytest.raises(InvalidArgument) as caught:
        checked_hyperparameters(get_method("supervised"), {name: value})
    assert caught.value.param == name


def test_a_spec_reads_its_hyperparameters_as_its_methods_type():
    spec = TuningSpec(base_model="m", method="preference", hyperparameters={"beta": 0.3})
    assert isinstance(spec.hyperparameters, PreferenceHyperparameters)
    shared = TuningSpec(base_model="m", method="distillation", hyperparameters=Hyperparameters())
    assert isinstance(shared.hyperparameters, DistillationHyperparameters)
    assert spec.model_dump()["hyperparameters"]["beta"] == 0.3
    with pytest.raises(ValidationError):
        TuningSpec(base_model="m", method="supervised", hyperparameters={"beta": 0.3})


def test_resolved_hyperparameters_are_the_methods_type_with_every_value_concrete():
    resolved = resolve_hyperparameters(
        PreferenceHyperparameters(learning_rate_multiplier=2), "peft", 400, method="preference"
    )
    assert isinstance(resolved, PreferenceHyperparameters)
    assert (resolved.epochs, resolved.batch_size, resolved.beta) == (3, 8, 0.1)
    assert resolved.learning_rate == pytest.approx(2e-4 * 0.3 * 2)
    assert resolved.learning_rate_multiplier == pytest.approx(2)


def test_the_service_refuses_an_unknown_method_before_anything_else():
    from tuneforge.service.jobs import JobService

    service = JobService(db=None, settings=None, models=None)  # never reached
    with pytest.raises(InvalidArgument) as caught:
        service.create("default", JobRequest(base_model="m", training_file="f", method="rlhf"))
    assert caught.value.param == "method"


def test_registering_the_methods_imports_no_torch():
    probe = "import sys, tuneforge.engine.methods; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr
