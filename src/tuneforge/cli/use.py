"""``tuneforge generate`` and ``tuneforge evaluate``: use a tuned model, and measure it."""

from __future__ import annotations

from pathlib import Path

import typer

from tuneforge.cli.common import JSON_OPTION, console, friendly_errors, local_service, print_json
from tuneforge.data.records import Conversation, Turn

PROJECT = "default"


@friendly_errors
def generate(
    model: str = typer.Argument(
        ..., help="A tuned model (tm-…, tj-…, ft:…, ID@epoch-N) or a base model."
    ),
    prompt: str = typer.Argument(..., help="The user's message."),
    system: str | None = typer.Option(None, "--system", "-s", help="System instruction."),
    temperature: float = typer.Option(0.0, help="0 decodes greedily."),
    top_p: float = typer.Option(1.0),
    top_k: int = typer.Option(0, help="0 turns it off."),
    max_tokens: int = typer.Option(256, help="Most output tokens."),
    stop: list[str] = typer.Option([], help="Stop sequence (repeatable)."),
    seed: int | None = typer.Option(None, help="Seed for sampling."),
    n: int = typer.Option(1, help="How many answers."),
    images: list[Path] = typer.Option(
        [], "--image", help="A PNG, JPEG, WebP or GIF image before the prompt (repeatable)."
    ),
    pdfs: list[Path] = typer.Option(
        [], "--pdf", help="A PDF document before the prompt, each page an image (repeatable)."
    ),
    audio: list[Path] = typer.Option(
        [], "--audio", help="A WAV, MP3 or FLAC recording before the prompt (repeatable)."
    ),
) -> None:
    """Answer PROMPT with MODEL, loaded on this machine from the local data dir (on a server,
    use its chat/completions or generateContent API). Files (--image, --pdf, --audio) go
    inline before PROMPT in the user's turn, images first, then documents, then audio; a model
    that cannot read their kind refuses them."""
    from tuneforge.cli.media_options import media_parts
    from tuneforge.config import get_settings
    from tuneforge.data.media import media_limits
    from tuneforge.inference.types import GenerationParams

    params = GenerationParams(
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        max_output_tokens=max_tokens,
        stop=tuple(stop),
        seed=seed,
        n=n,
    )
    media = media_parts(images, pdfs, audio, media_limits(get_settings()))
    conversation = Conversation(turns=(Turn("user", prompt, media=media),), system=system)
    result = local_service().generation.generate(PROJECT, model, conversation, params)
    for number, completion in enumerate(result.completions, 1):
        if len(result.completions) > 1:
            console.print(f"[bold]── answer {number} of {len(result.completions)} ──[/]")
        console.print(completion.text, soft_wrap=True, markup=False, highlight=False)
    console.print(
        f"[dim]{result.prompt_tokens} prompt tokens, "
        f"{sum(c.output_tokens for c in result.completions)} output tokens[/]",
        highlight=False,
    )


@friendly_errors
def evaluate(
    model: str = typer.Argument(..., help="The tuned model (or a base model) to evaluate."),
    test_file: Path = typer.Argument(..., exists=True, dir_okay=False, help="Held-out JSONL."),
    few_shot: int = typer.Option(
        3,
        "--few-shot",
        "-k",
        help="Examples in the few-shot prompt, with their images, documents and audio.",
    ),
    train_file: Path | None = typer.Option(
        None,
        "--train",
        help="Where few-shot examples come from (default: the job's training file).",
    ),
    limit: int | None = typer.Option(None, help="Evaluate only the first N test examples."),
    max_tokens: int | None = typer.Option(
        None,
        "--max-tokens",
        min=1,
        help="Longest answer (default: the longest reference answer plus a quarter).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Compare MODEL with its base model zero-shot and few-shot (and, for a distilled model,
    with its teacher) on TEST_FILE: exact match, token F1, ROUGE-L, prompt tokens, speed.
    The models run on this machine, from the local data dir. Examples may hold media parts
    (inline, or files by uploaded id or path under the dataset roots): each model is refused
    up front, by test example, media it cannot read. Few-shot examples bring their media into
    every few-shot prompt; when that outgrows the model's context the command says so: use a
    smaller --few-shot, or 0."""
    from tuneforge.data.validate import load_examples
    from tuneforge.inference.evaluate import report_table, to_json
    from tuneforge.service.evaluation import compare_with_base

    service = local_service()
    test = load_examples(test_file, task="supervised", min_examples=1)[:limit]
    train = load_examples(train_file, min_examples=1) if train_file else None
    with console.status(f"evaluating on {len(test)} examples"):
        report = compare_with_base(service, PROJECT, model, test, few_shot, train, max_tokens)
    if as_json:
        print_json(to_json(report))
    else:
        console.print(report_table(report))


@friendly_errors
def score(
    model: str = typer.Argument(..., help="A reward model (tuned with --method reward)."),
    prompt: str | None = typer.Argument(None, help="The user's message."),
    responses: list[str] | None = typer.Argument(None, help="Answers to score (one or more)."),
    system: str | None = typer.Option(None, "--system", "-s", help="System instruction."),
    pairs: Path | None = typer.Option(
        None,
        "--pairs",
        exists=True,
        dir_okay=False,
        help="A preference file: report how often the chosen answer scores higher.",
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Score answers with a reward model, loaded on this machine from the local data dir (on a
    server, POST /v1/score): each RESPONSE to PROMPT, or every pair of a preference file."""
    from tuneforge.data.tokenize import with_response
    from tuneforge.data.validate import load_examples

    service = local_service()
    if pairs is not None:
        examples = load_examples(pairs, task="preference", min_examples=1)
        conversations = [
            with_response(e.prompt, answer) for e in examples for answer in (e.chosen, e.rejected)
        ]
        scores = service.generation.score(PROJECT, model, conversations)
        wins = sum(
            chosen > rejected for chosen, rejected in zip(scores[::2], scores[1::2], strict=True)
        )
        result = {"pairs": len(examples), "pairwise_accuracy": wins / len(examples)}
        if as_json:
            print_json(result)
        else:
            console.print(
                f"pairwise accuracy {result['pairwise_accuracy']:.3f} on {len(examples)} pairs"
            )
        return
    if prompt is None or not responses:
        raise typer.BadParameter("give PROMPT and at least one RESPONSE, or --pairs FILE")
    asked = Conversation(turns=(Turn("user", prompt),), system=system)
    scores = service.generation.score(
        PROJECT, model, [with_response(asked, answer) for answer in responses]
    )
    if as_json:
        print_json([{"response": r, "score": s} for r, s in zip(responses, scores, strict=True)])
        return
    for response, value in zip(responses, scores, strict=True):
        console.print(f"{value:+.4f}  {response}", soft_wrap=True, markup=False, highlight=False)
