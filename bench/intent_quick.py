"""Intent macro-F1 in seconds: the pipeline's intent classifier alone on bench/nlu.py's own splits.

    .venv/bin/python bench/intent_quick.py [--data data/nlu] [--seeds 1,2,3]

LinearIntentClassifier (trained in-process, no `rasa train`) and the lexicon after it, as in config.yml,
on the same 80/20 splits as bench/nlu.py. Its intent macro-F1 is within ±0.005 of the full bench's per
seed and ±0.001 on the 3-seed mean (bench/nlu.md round 6), in ~40 s instead of ~25 minutes, so data and
classifier changes can be tried quickly; record results from the full bench. Prints per-language
macro-F1 per seed, the mean, and the most frequent confusions. Never tune on the printed test
sentences: write examples from the intents' meaning.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nlu import LANGUAGES, stratified_split  # noqa: E402  (bench/nlu.py, beside this file)


def main() -> None:
    from rasa.engine.graph import ExecutionContext, GraphSchema
    from rasa.engine.storage.local_model_storage import LocalModelStorage
    from rasa.engine.storage.resource import Resource
    from rasa.shared.nlu.training_data.loading import load_data
    from rasa.shared.nlu.training_data.message import Message
    from rasa.shared.nlu.training_data.training_data import TrainingData
    from sklearn.metrics import f1_score

    from clinic.nlu.lexicon import lexicon_intent
    from clinic.nlu.linear_intent import LinearIntentClassifier

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/nlu")
    parser.add_argument("--seeds", default="1,2,3")
    args = parser.parse_args()

    scores, confusions = {lang: [] for lang in LANGUAGES}, Counter()
    for seed in (int(s) for s in args.seeds.split(",")):
        train, tests = [], {}
        for lang in LANGUAGES:
            train_part, tests[lang] = stratified_split(load_data(f"{args.data}/{lang}").intent_examples, seed)
            train += train_part
        with tempfile.TemporaryDirectory() as scratch:
            classifier = LinearIntentClassifier.create(
                LinearIntentClassifier.get_default_config(), LocalModelStorage(Path(scratch)), Resource("intents"),
                ExecutionContext(GraphSchema({}), "intent_quick"))
            classifier.train(TrainingData(training_examples=train))
            for lang, test in tests.items():
                messages = classifier.process([Message(data={"text": m.get("text")}) for m in test])
                predicted = [lexicon_intent(m.get("text")) or m.get("intent")["name"] for m in messages]
                expected = [m.get("intent") for m in test]
                scores[lang].append(f1_score(expected, predicted, average="macro"))
                confusions.update((lang, e, p) for e, p in zip(expected, predicted, strict=True) if e != p)
        print(f"seed {seed}: " + ", ".join(f"{lang} {scores[lang][-1]:.3f}" for lang in LANGUAGES), flush=True)
    print("mean: " + ", ".join(f"{lang} {statistics.mean(scores[lang]):.3f}" for lang in LANGUAGES))
    print("confusions: " + "; ".join(f"{lang} {e} → {p} ×{n}" for (lang, e, p), n in confusions.most_common(15)))


if __name__ == "__main__":
    main()
