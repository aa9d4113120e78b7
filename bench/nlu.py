"""Measure the clinic NLU on held-out data: intents, entities and FAQ answers per language, and parse cost.

    RASA_TELEMETRY_ENABLED=false .venv/bin/python bench/nlu.py [--work /tmp/nlu-bench] [--seed 1] [--variants]
        [--config config.yml] [--data data/nlu] [--fresh] [--fresh-only MODEL] [--quick]

Run from the project root. The project is only read: everything else goes under --work.
1. Snapshots config.yml, domain.yml and data/nlu/{it,en} (others may be editing them while this runs).
2. Splits each language 80/20 per intent (each faq/* sub-intent is its own stratum) with a fixed seed.
   Train = both languages' train parts; test = each language's test part on its own.
3. Builds a throw-away SQLite clinic DB (`clinic db upgrade` + `clinic seed`) and exports it as
   DATABASE_URL, because ClinicTermsExtractor reads specialty and doctor names from it.
4. `rasa train nlu` on the train split with the project's config and domain (timed).
5. `rasa test nlu` per language, reading the JSON reports it writes.
6. In-process: loads the model with Agent.load and times `parse_message` (20 warm-ups, then every
   test sentence, at least 200 parses); also scores what the bot really sees, which `rasa test nlu`
   does not: the entities of all extractors together, the fallback rate and the FAQ answer end to end.
   --quick skips this step (its rows print n/a): under load it can take longer than the training.
7. With --variants: trains two 1-epoch variants, with and without the two custom components, and
   times their parses (the difference is the custom components' cost; takes a few more minutes).
8. With --fresh: also tests the model on bench/fresh/{it,en}.yml, sentences that are in no training
   data. The split above changes whenever examples are added; the fresh set stays the same, so two
   data versions can be compared on it. `--fresh-only MODEL` scores an already trained model on it.
Prints Markdown; results are recorded by hand in bench/nlu.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LANGUAGES = ("it", "en")
TEST_SHARE = 0.2
ENTITIES = ("specialty", "doctor", "relation")
LEARNED_EXTRACTOR = "CRFEntityExtractor"  # the pipeline's trained entity extractor (DIETClassifier before round 6)
FRESH = ROOT / "bench" / "fresh"  # never training data: see its files' header
CUSTOM_COMPONENTS = ("clinic.nlu.time_extractor.TimeExtractor", "clinic.nlu.clinic_terms.ClinicTermsExtractor")
WARM_UP, MIN_PARSES = 20, 200


# ---------------------------------------------------------------- data


def snapshot(work: Path, config: Path, data: Path) -> Path:
    """Copies the inputs once, so that training and testing see the same files even if someone edits them."""
    project = work / "project"
    shutil.rmtree(project, ignore_errors=True)
    for language in LANGUAGES:
        shutil.copytree(data / language, project / "nlu" / language)
    shutil.copy(config, project / "config.yml")
    shutil.copy(ROOT / "domain.yml", project / "domain.yml")
    return project


def label(message) -> str:
    """The stratum of an example: `faq/address` for retrieval intents, else the intent."""
    return message.get("intent_response_key") or message.get("intent")


def stratified_split(examples: list, seed: int) -> tuple[list, list]:
    """Holds out TEST_SHARE of every label (at least one example), independent of file order."""
    by_label = defaultdict(list)
    for message in examples:
        by_label[label(message)].append(message)
    rng = random.Random(seed)
    train, test = [], []
    for name in sorted(by_label):
        group = sorted(by_label[name], key=lambda m: m.get("text"))
        rng.shuffle(group)
        held_out = max(1, round(len(group) * TEST_SHARE))
        test += group[:held_out]
        train += group[held_out:]
    return train, test


def write_splits(project: Path, work: Path, seed: int) -> tuple[Path, dict[str, Path], list[dict]]:
    """Writes train/nlu.yml (both languages) and test_<lang>.yml; returns their paths and the split sizes."""
    from rasa.shared.nlu.training_data.loading import load_data
    from rasa.shared.nlu.training_data.training_data import TrainingData

    train_dir, test_files, sizes, train_all, lookups, regexes = work / "train", {}, [], [], [], []
    shutil.rmtree(train_dir, ignore_errors=True)
    train_dir.mkdir(parents=True)
    for language in LANGUAGES:
        data = load_data(str(project / "nlu" / language))
        examples, lookups, regexes = data.intent_examples, lookups + data.lookup_tables, regexes + data.regex_features
        train, test = stratified_split(examples, seed)
        train_all += train
        test_files[language] = work / f"test_{language}.yml"
        test_files[language].write_text(TrainingData(training_examples=test).nlu_as_yaml())
        sizes.append({"language": language, "examples": len(examples), "train": len(train), "test": len(test),
                      "labels": len({label(m) for m in examples}),
                      "entities_in_test": sum(len(m.get("entities") or []) for m in test)})
    # Synonyms are rebuilt from the train examples' annotations only, so no test value leaks in; lookup
    # tables and regexes are not examples and go to training whole.
    train = TrainingData(training_examples=train_all, lookup_tables=lookups, regex_features=regexes)
    (train_dir / "nlu.yml").write_text(train.nlu_as_yaml())
    leaks = {m.get("text").strip().lower() for m in train_all}
    for row in sizes:
        test = load_data(str(test_files[row["language"]])).intent_examples
        row["test_texts_also_in_train"] = sum(m.get("text").strip().lower() in leaks for m in test)
    return train_dir, test_files, sizes


# ---------------------------------------------------------------- rasa and clinic commands


def run(command: list[str], env: dict[str, str], log: Path) -> float:
    """Runs a command with its output in `log`; returns the wall time in seconds, stops on failure."""
    started = time.perf_counter()
    with log.open("w") as out:
        done = subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=log.parent)
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed; see {log}:\n" + "".join(log.read_text().splitlines(True)[-30:]))
    return time.perf_counter() - started


def clinic_db(work: Path, env: dict[str, str]) -> None:
    """A fresh demo clinic: ClinicTermsExtractor's patterns come from its specialties and doctors."""
    (work / "clinic.db").unlink(missing_ok=True)
    run([str(BIN / "clinic"), "db", "upgrade"], env, work / "db_upgrade.log")
    run([str(BIN / "clinic"), "seed"], env, work / "seed.log")


def train(config: Path, train_dir: Path, domain: Path, work: Path, name: str, env: dict) -> tuple[Path, float]:
    """`rasa train nlu`, timed; Rasa's cache lives under --work, so nothing is reused from the project."""
    command = [str(BIN / "rasa"), "train", "nlu", "--config", str(config), "--nlu", str(train_dir),
               "--domain", str(domain), "--out", str(work / "models"), "--fixed-model-name", name]
    seconds = run(command, env, work / f"train_{name}.log")
    return work / "models" / f"{name}.tar.gz", seconds


def rasa_test(model: Path, test_file: Path, domain: Path, out: Path, env: dict[str, str]) -> None:
    """`rasa test nlu` with explicit paths (the bare command trips over the project's .rasa cache)."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    run([str(BIN / "rasa"), "test", "nlu", "--nlu", str(test_file), "--model", str(model), "--domain", str(domain),
         "--out", str(out), "--no-plot"], env, out / "test.log")


# ---------------------------------------------------------------- reading Rasa's reports


def read_json(path: Path, default=None):
    return json.loads(path.read_text()) if path.exists() else default


def entity_scores(report: dict) -> dict:
    """Per-entity F1 plus macro and support-weighted F1 over specialty/doctor/relation only.

    Rasa's reports score tokens and list only labels that occur in the test annotations; taking the
    three types ourselves keeps the average the same whichever extractor the report is about.
    """
    rows = {name: report[name] for name in ENTITIES if report.get(name, {}).get("support")}
    support = sum(row["support"] for row in rows.values())
    scores = {name: row["f1-score"] for name, row in rows.items()}
    scores["macro"] = statistics.mean(scores.values()) if rows else None
    scores["weighted"] = sum(r["f1-score"] * r["support"] for r in rows.values()) / support if support else None
    return scores


def report_metrics(out: Path) -> dict:
    """The headline numbers of one `rasa test nlu` output folder."""
    intents = read_json(out / "intent_report.json")
    responses = read_json(out / "response_selection_report.json")
    return {
        "intent_macro_f1": intents["macro avg"]["f1-score"],
        "intent_accuracy": intents["accuracy"],
        "learned": entity_scores(read_json(out / f"{LEARNED_EXTRACTOR}_report.json", {})),
        "terms": entity_scores(read_json(out / "ClinicTermsExtractor_report.json", {})),
        "faq_selector_accuracy": responses["accuracy"] if responses else None,
        "per_intent": {name: (row["f1-score"], row["support"]) for name, row in intents.items()
                       if isinstance(row, dict) and name not in ("macro avg", "weighted avg", "micro avg")},
    }


def confusions(out: Path) -> Counter:
    """(expected, predicted) pairs of the wrong intents and wrong FAQ answers."""
    pairs = Counter()
    for error in read_json(out / "intent_errors.json", []):
        pairs[(error["intent"], error["intent_prediction"]["name"])] += 1
    for error in read_json(out / "response_selection_errors.json", []):
        pairs[(error["intent_response_key_target"], error["intent_response_key_prediction"]["name"])] += 1
    return pairs


def entity_errors(out: Path) -> list[str]:
    """The messages where the learned extractor's entities differ from the annotation: `text: expected → found`."""
    def spans(text: str, entities: list[dict]) -> str:
        return ", ".join(f"{text[e['start']:e['end']]}={e['entity']}" for e in entities) or "nothing"

    return [f"{e['text']}: {spans(e['text'], e['entities'])} → "
            + spans(e["text"], [p for p in e["predicted_entities"] if p.get("extractor") == LEARNED_EXTRACTOR])
            for e in read_json(out / f"{LEARNED_EXTRACTOR}_errors.json", [])]


# ---------------------------------------------------------------- in-process measurements


def percentiles(samples: list[float]) -> tuple[float, float]:
    cut = statistics.quantiles(samples, n=100)
    return cut[49], cut[94]


async def time_parses(agent, texts: list[str]) -> tuple[list[float], dict[str, dict]]:
    """Parse latency in ms as the bot pays it (one message at a time), and the first parse of every text."""
    for text in texts[:WARM_UP]:
        await agent.parse_message(text)
    samples, parsed, unique = [], {}, set(texts)  # a text can be in both languages' tests ("bye")
    while len(samples) < MIN_PARSES or len(parsed) < len(unique):
        for text in texts:
            started = time.perf_counter()
            result = await agent.parse_message(text)
            samples.append((time.perf_counter() - started) * 1000)
            parsed.setdefault(text, result)
    return samples, parsed


def bot_view(test_messages: list, parsed: dict[str, dict]) -> dict:
    """What the dialogue gets: how often FallbackClassifier fires, and FAQ questions answered right.

    End to end means intent faq (not nlu_fallback) and the right answer: `rasa test nlu` undoes the
    fallback and scores the selector on every faq example whatever the intent was.
    """
    fallback = sum(parsed[m.get("text")]["intent"]["name"] == "nlu_fallback" for m in test_messages)
    faq = [m for m in test_messages if m.get("intent") == "faq"]
    answered = sum(
        parsed[m.get("text")]["intent"]["name"] == "faq"
        and parsed[m.get("text")].get("response_selector", {}).get("faq", {}).get("response", {})
        .get("intent_response_key") == m.get("intent_response_key")
        for m in faq)
    return {"fallback_rate": fallback / len(test_messages), "faq_end_to_end": answered / len(faq) if faq else None}


async def combined_entities(agent, test_file: Path) -> dict:
    """Entity F1 of all extractors together (the CRF after synonyms + ClinicTermsExtractor).

    Rasa writes one report per extractor, never a combined one; this feeds the merged predictions to
    Rasa's own token-level evaluation. `time` is left out: the test data does not annotate it.
    """
    from rasa.nlu.test import EntityEvaluationResult, evaluate_entities, get_eval_data
    from rasa.shared.nlu.training_data.loading import load_data

    _, _, results = await get_eval_data(agent.processor, load_data(str(test_file)))
    merged = [EntityEvaluationResult(r.entity_targets,
                                     [{**e, "extractor": "combined"} for e in r.entity_predictions
                                      if e["entity"] in ENTITIES],
                                     r.tokens, r.message) for r in results]
    report = evaluate_entities(merged, {"combined"}, None, False, False, True, report_as_dict=True)
    return entity_scores(report["combined"]["report"])


async def measure_model(model: Path, test_files: dict[str, Path], score: bool) -> dict:
    """Loads the model once and times parses over all test sentences; with `score`, also the bot's-eye metrics."""
    from rasa.core.agent import Agent
    from rasa.shared.nlu.training_data.loading import load_data

    started = time.perf_counter()
    agent = Agent.load(str(model))
    loaded = time.perf_counter() - started
    tests = {lang: load_data(str(path)).intent_examples for lang, path in test_files.items()}
    texts = [m.get("text") for messages in tests.values() for m in messages]
    samples, parsed = await time_parses(agent, texts)
    result = {"load_seconds": loaded, "parses": len(samples), "p50_p95": percentiles(samples)}
    if score:
        for lang, messages in tests.items():
            result[lang] = {**bot_view(messages, parsed), "combined": await combined_entities(agent, test_files[lang])}
    return result


# ---------------------------------------------------------------- variants for the custom components' cost


def variant_config(project: Path, work: Path, with_custom: bool) -> Path:
    """The project's pipeline, with or without the two custom extractors.

    Neural components train 1 epoch: the parse cost does not depend on the epochs.
    """
    from rasa.shared.utils.io import read_yaml_file, write_yaml

    config = read_yaml_file(project / "config.yml")
    pipeline = [dict(c) for c in config["pipeline"] if with_custom or c["name"] not in CUSTOM_COMPONENTS]
    for component in pipeline:
        if "epochs" in component:
            component["epochs"] = 1
    config["pipeline"] = pipeline
    path = work / f"config_{'with' if with_custom else 'without'}_custom.yml"
    write_yaml(config, path)
    return path


def variants(project: Path, train_dir: Path, work: Path, test_files: dict[str, Path], env: dict) -> list[dict]:
    rows = []
    for with_custom in (True, False):
        config = variant_config(project, work, with_custom)
        name = f"nlu_bench_{'with' if with_custom else 'without'}_custom"
        model, seconds = train(config, train_dir, project / "domain.yml", work, name, env)
        measured = asyncio.run(measure_model(model, test_files, score=False))
        rows.append({"variant": name, "train_seconds": seconds, **measured})
    return rows


# ---------------------------------------------------------------- output


def fmt(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{os.cpu_count()} cores ({model}), Python {platform.python_version()}, load average {load} at start"


def metric_rows(metrics: dict, bot: dict) -> list[tuple[str, float | None]]:
    """One language's numbers, named: from `rasa test nlu` (metrics) and from the in-process parses (bot)."""
    rows = [("intent macro-F1", metrics["intent_macro_f1"]),
            ("intent accuracy", metrics["intent_accuracy"]),
            ("faq answer accuracy (ResponseSelector alone, rasa test)", metrics["faq_selector_accuracy"]),
            ("faq answered right end to end (intent + answer, fallback on)", bot["faq_end_to_end"]),
            ("share of messages sent to nlu_fallback", bot["fallback_rate"])]
    for source, scores in ((LEARNED_EXTRACTOR, metrics["learned"]), ("all extractors", bot["combined"])):
        rows += [(f"entity F1 {name}: {source}", scores.get(name)) for name in ("macro", "weighted", *ENTITIES)]
    rows += [(f"entity F1 {name}: ClinicTermsExtractor's additions (rasa test)", metrics["terms"].get(name))
             for name in ("specialty", "doctor")]
    return rows


def pipeline_summary(config: Path) -> str:
    """The pipeline as measured (config.yml changes often): component names and any epochs/size settings."""
    from rasa.shared.utils.io import read_yaml_file

    keys = ("epochs", "number_of_transformer_layers", "transformer_size")
    return " → ".join(c["name"].rsplit(".", 1)[-1] + "".join(f" {k}={c[k]}" for k in keys if k in c)
                      for c in read_yaml_file(config)["pipeline"])


def fresh_scores(model: Path, domain: Path, work: Path, env: dict) -> dict:
    """`rasa test nlu` on the fixed fresh sentences of each language."""
    scores = {}
    for lang in LANGUAGES:
        out = work / f"fresh_{lang}"
        rasa_test(model, FRESH / f"{lang}.yml", domain, out, env)
        scores[lang] = {"metrics": report_metrics(out), "confusions": confusions(out),
                        "entity_errors": entity_errors(out)}
    return scores


def print_fresh(fresh: dict) -> None:
    print("\n| fresh set (bench/fresh) | " + " | ".join(LANGUAGES) + " |")
    print("| --- |" + " --- |" * len(LANGUAGES))
    rows = (("intent macro-F1", lambda m: m["intent_macro_f1"]), ("intent accuracy", lambda m: m["intent_accuracy"]),
            (f"entity F1 macro: {LEARNED_EXTRACTOR}", lambda m: m["learned"].get("macro")),
            (f"entity F1 relation: {LEARNED_EXTRACTOR}", lambda m: m["learned"].get("relation")))
    for title, get in rows:
        print(f"| {title} | " + " | ".join(fmt(get(fresh[lang]["metrics"])) for lang in LANGUAGES) + " |")
    for lang in LANGUAGES:
        pairs = fresh[lang]["confusions"].most_common(12)
        print(f"\nFresh confusions ({lang}): " + ("; ".join(f"{a} → {b} ×{n}" for (a, b), n in pairs) or "none"))
        for line in fresh[lang]["entity_errors"][:8]:
            print(f"- fresh entity error ({lang}): {line}")


def print_report(facts: dict) -> None:
    """The results as Markdown, in the order bench/nlu.md uses."""
    print(f"# NLU benchmark — {facts['date']}\n\nMachine: {facts['machine']}. Rasa {facts['rasa']}.\n")
    print(f"Git HEAD {facts['head']}; uncommitted changes in the inputs: {facts['dirty'] or 'none'}.\n")
    print(f"Pipeline: {facts['pipeline']}\n")
    print("| language | examples | labels | train | test | entities in test | test texts also in train |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for s in facts["sizes"]:
        print(f"| {s['language']} | {s['examples']} | {s['labels']} | {s['train']} | {s['test']} "
              f"| {s['entities_in_test']} | {s['test_texts_also_in_train']} |")
    print(f"\nTraining (`rasa train nlu`, {facts['train_examples']} examples): {facts['train_seconds']:.0f} s\n")
    print("| metric (target ≥ 0.93) | " + " | ".join(LANGUAGES) + " |")
    print("| --- |" + " --- |" * len(LANGUAGES))
    per_language = [metric_rows(facts["metrics"][lang], facts["bot"][lang]) for lang in LANGUAGES]
    for i, (title, _) in enumerate(per_language[0]):
        print(f"| {title} | " + " | ".join(fmt(rows[i][1]) for rows in per_language) + " |")
    print("\n| intent F1 (test examples) | " + " | ".join(LANGUAGES) + " |")
    print("| --- |" + " --- |" * len(LANGUAGES))
    per_intent = [facts["metrics"][lang]["per_intent"] for lang in LANGUAGES]
    for name in sorted(set().union(*per_intent)):
        print(f"| {name} | " + " | ".join(f"{fmt(p[name][0], 2)} ({p[name][1]})" if name in p else "—"
                                          for p in per_intent) + " |")
    for lang in LANGUAGES:
        pairs = facts["confusions"][lang].most_common(10)
        print(f"\nConfusions ({lang}), expected → predicted: "
              + ("; ".join(f"{a} → {b} ×{n}" for (a, b), n in pairs) or "none"))
        for line in facts["entity_errors"][lang][:8]:
            print(f"- entity error ({lang}): {line}")
    p50, p95 = facts["bot"]["p50_p95"]
    print(f"\nParse cost in-process (Agent.parse_message, {facts['bot']['parses']} parses after {WARM_UP} warm-ups): "
          f"p50 {p50:.1f} ms, p95 {p95:.1f} ms; Agent.load {facts['bot']['load_seconds']:.1f} s")
    if facts.get("variants"):
        print("\n| 1-epoch variant | train | parse p50 | parse p95 |\n| --- | --- | --- | --- |")
        for v in facts["variants"]:
            p50, p95 = v["p50_p95"]
            print(f"| {v['variant']} | {v['train_seconds']:.0f} s | {p50:.1f} ms | {p95:.1f} ms |")
    if facts.get("fresh"):
        print_fresh(facts["fresh"])


# ---------------------------------------------------------------- main


def quiet_rasa() -> None:
    """Warnings only, on stderr: unconfigured, structlog prints every parse's debug line to stdout,
    which would both spoil the Markdown and slow the timed parses (a served bot logs at INFO).
    """
    from rasa.utils.log_utils import configure_structlog

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    configure_structlog(logging.WARNING)


def git_state() -> tuple[str, str]:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    status = subprocess.run(["git", "status", "--porcelain", "--", "config.yml", "domain.yml", "data/nlu"],
                            cwd=ROOT, capture_output=True, text=True).stdout
    return head.strip(), ", ".join(line[3:] for line in status.splitlines())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/nlu-bench"), help="scratch folder (overwritten)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the train/test split")
    parser.add_argument("--variants", action="store_true", help="also time 1-epoch pipelines with/without custom")
    parser.add_argument("--config", type=Path, default=ROOT / "config.yml", help="Rasa config to measure")
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "nlu", help="folder with it/ and en/ NLU files")
    parser.add_argument("--fresh", action="store_true", help="also score the model on bench/fresh")
    parser.add_argument("--fresh-only", type=Path, metavar="MODEL", help="only score this model on bench/fresh")
    parser.add_argument("--quick", action="store_true", help="skip the in-process parses (cost, bot-side scores)")
    args = parser.parse_args()

    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "DATABASE_URL": f"sqlite:///{work / 'clinic.db'}",
           "RASA_CACHE_DIRECTORY": str(work / "cache")}
    os.environ.update(env)  # the in-process Agent's ClinicTermsExtractor reads the same database
    shutil.rmtree(work / "cache", ignore_errors=True)
    quiet_rasa()
    if args.fresh_only:
        clinic_db(work, env)
        print_fresh(fresh_scores(args.fresh_only.resolve(), ROOT / "domain.yml", work, env))
        return

    import rasa

    head, dirty = git_state()
    facts = {"date": date.today().isoformat(), "machine": machine(), "rasa": rasa.__version__, "head": head,
             "dirty": dirty}
    project = snapshot(work, args.config.resolve(), args.data.resolve())
    facts["pipeline"] = pipeline_summary(project / "config.yml")
    train_dir, test_files, facts["sizes"] = write_splits(project, work, args.seed)
    facts["train_examples"] = sum(s["train"] for s in facts["sizes"])
    clinic_db(work, env)
    model, facts["train_seconds"] = train(project / "config.yml", train_dir, project / "domain.yml", work,
                                          "nlu_bench", env)
    facts["metrics"], facts["confusions"], facts["entity_errors"] = {}, {}, {}
    for lang, test_file in test_files.items():
        out = work / f"results_{lang}"
        rasa_test(model, test_file, project / "domain.yml", out, env)
        facts["metrics"][lang], facts["confusions"][lang] = report_metrics(out), confusions(out)
        facts["entity_errors"][lang] = entity_errors(out)
    if args.quick:
        empty = {"fallback_rate": None, "faq_end_to_end": None, "combined": {}}
        facts["bot"] = {"load_seconds": 0.0, "parses": 0, "p50_p95": (0.0, 0.0), **{lang: empty for lang in LANGUAGES}}
    else:
        facts["bot"] = asyncio.run(measure_model(model, test_files, score=True))
    if args.fresh:
        facts["fresh"] = fresh_scores(model, project / "domain.yml", work, env)
    if args.variants:
        facts["variants"] = variants(project, train_dir, work, test_files, env)
    pairs = {lang: [[*pair, n] for pair, n in found.most_common()] for lang, found in facts["confusions"].items()}
    (work / "facts.json").write_text(json.dumps({**facts, "confusions": pairs, "fresh": None}, default=str, indent=2))
    print_report(facts)


if __name__ == "__main__":
    main()
