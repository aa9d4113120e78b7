"""Per-message prediction cost of a trained full model: NLU parse, each policy, and the whole core step.

    RASA_TELEMETRY_ENABLED=false .venv/bin/python bench/cost.py --model models/<fingerprint>.tar.gz
        [--stories tests/stories] [--repeat 3]

Run from the project root. In-process and one message at a time, like a single `rasa run` worker:
1. Loads the model with Agent.load (timed).
2. Parses every user text of the test stories (`parse_message`, after 20 warm-ups).
3. Replays every test story's events and, before each bot action, asks the policy ensemble for the
   next action (`MessageProcessor._predict_next_with_tracker`, the call `rasa run` makes). Each
   policy's `predict_action_probabilities` is wrapped with a timer, so one run gives the share of
   Memoization, Rule and TED policies; the rest of the core step is featurisation/graph overhead
   and the ensemble. Without TED a core step would cost about its total minus TED's share.
Not measured: the tracker store, the lock store, HTTP and the action server (custom actions run
there, and their database queries are not part of Rasa's cost).
Prints Markdown; results are recorded by hand in bench/nlu.md.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WARM_UP = 20


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def wrap_policies(timings: dict[str, list[float]]) -> None:
    """Times every policy class's own predict_action_probabilities (RulePolicy overrides Memoization's)."""
    from rasa.core.policies.memoization import MemoizationPolicy
    from rasa.core.policies.rule_policy import RulePolicy
    from rasa.core.policies.ted_policy import TEDPolicy
    from rasa.core.policies.unexpected_intent_policy import UnexpecTEDIntentPolicy

    for cls in (MemoizationPolicy, RulePolicy, TEDPolicy, UnexpecTEDIntentPolicy):
        original = cls.__dict__["predict_action_probabilities"]

        def timed(self, *args, __original=original, __name=cls.__name__, **kwargs):
            started = time.perf_counter()
            try:
                return __original(self, *args, **kwargs)
            finally:
                timings[__name].append((time.perf_counter() - started) * 1000)

        cls.predict_action_probabilities = timed


def story_events(domain, stories: Path) -> list[tuple[str, list]]:
    """Every test story as a flat event list (the test stories have no checkpoints or OR steps)."""
    from rasa.shared.core.training_data.story_reader.yaml_story_reader import YAMLStoryReader

    result = []
    for path in sorted(stories.glob("*.yml")):
        for step in YAMLStoryReader(domain).read_from_file(str(path)):
            result.append((step.block_name, step.explicit_events(domain)))
    return result


async def measure(model: Path, stories: Path, repeat: int) -> dict:
    from rasa.core.agent import Agent
    from rasa.shared.core.events import ActionExecuted, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    timings: dict[str, list[float]] = defaultdict(list)
    wrap_policies(timings)
    started = time.perf_counter()
    agent = Agent.load(str(model))
    load_seconds = time.perf_counter() - started
    processor, domain = agent.processor, agent.domain

    flows = story_events(domain, stories)
    texts = [e.text for _, events in flows for e in events if isinstance(e, UserUttered) and e.text]
    for text in texts[:WARM_UP]:
        await processor.parse_message(_message(text))
    parse = []
    for _ in range(repeat):
        for text in texts:
            begun = time.perf_counter()
            await processor.parse_message(_message(text))
            parse.append((time.perf_counter() - begun) * 1000)

    prefixes = []
    for _name, events in flows:
        for i, event in enumerate(events):
            if isinstance(event, ActionExecuted) and event.action_name != "action_listen" and i:
                prefixes.append(events[:i])
    for events in prefixes[:WARM_UP]:
        processor._predict_next_with_tracker(DialogueStateTracker.from_events("warm", events, domain.slots))
    timings.clear()
    core = []
    for _ in range(repeat):
        for events in prefixes:
            tracker = DialogueStateTracker.from_events("cost", events, domain.slots)
            begun = time.perf_counter()
            processor._predict_next_with_tracker(tracker)
            core.append((time.perf_counter() - begun) * 1000)
    user_turns = sum(isinstance(e, UserUttered) for _, events in flows for e in events)
    return {"load_seconds": load_seconds, "parse": parse, "core": core, "policies": dict(timings),
            "stories": len(flows), "predictions_per_user_turn": len(prefixes) / max(1, user_turns)}


def _message(text: str):
    from rasa.core.channels.channel import UserMessage

    return UserMessage(text, sender_id="cost")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--stories", type=Path, default=ROOT / "tests" / "stories")
    parser.add_argument("--repeat", type=int, default=3, help="passes over all texts and story steps")
    args = parser.parse_args()
    os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    from rasa.utils.log_utils import configure_structlog

    configure_structlog(logging.WARNING)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    facts = asyncio.run(measure(args.model.resolve(), args.stories.resolve(), args.repeat))
    print(f"Model {args.model.name}; {facts['stories']} test stories; load average at start {load}; "
          f"Agent.load {facts['load_seconds']:.1f} s\n")
    print("| step | calls | p50 ms | p95 ms | mean ms |\n| --- | --- | --- | --- | --- |")
    rows = [("NLU parse (parse_message)", facts["parse"]), ("core step (policy ensemble, one action)", facts["core"])]
    rows += [(f"  of which {name}", samples) for name, samples in sorted(facts["policies"].items())]
    for title, samples in rows:
        p50, p95 = percentiles(samples)
        print(f"| {title} | {len(samples)} | {p50:.1f} | {p95:.1f} | {statistics.mean(samples):.1f} |")
    per_turn = facts["predictions_per_user_turn"]
    estimate = statistics.median(facts["parse"]) + per_turn * statistics.median(facts["core"])
    print(f"\nBot actions per user message in the test stories: {per_turn:.2f} (each needs one core step, "
          f"plus the final action_listen). Estimated Rasa-side cost of one message at the medians: "
          f"parse + {per_turn + 1:.2f} core steps = "
          f"{statistics.median(facts['parse']) + (per_turn + 1) * statistics.median(facts['core']):.0f} ms "
          f"(without the listen step {estimate:.0f} ms).")


if __name__ == "__main__":
    main()
