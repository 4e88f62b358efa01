"""Every built-in task's train/eval split, pinned: the examples ``load`` returns (ids, order, text, gold,
meta) hash to the digests recorded before the split schemes moved into ``tasks/splits.py``. A changed digest
means rows moved between train and eval or were reordered, which changes stage fingerprints and makes the
sample cache miss: fix the code, never the digest."""
import hashlib
import json
from pathlib import Path

from s2distill.config import TaskConfig
from s2distill.tasks import make_task


def digest(examples, sources: tuple[str, ...] = ()) -> str:
    text = "".join(json.dumps(e.to_json(), sort_keys=True, ensure_ascii=False) + "\n" for e in examples)
    for s in sources:  # published examples record their file's path: this machine's, not the split's
        text = text.replace(s, "<source>")
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def own_files(d: Path) -> dict[str, str]:
    """Small deterministic local files for the sources that do not come with the shared data."""
    pairs = [{"question": f"q{i}?", "response_a": f"a{i}", "response_b": f"b{i}", "label": "AB"[i % 2]}
             for i in range(23)]
    human = [{"question_id": i, "model_a": "m1", "model_b": "m2", "winner": ("model_a", "model_b", "tie")[i % 3],
              "turn": 1, "conversation_a": [{"role": "user", "content": f"Q{i}"}, {"role": "assistant", "content": "x"}],
              "conversation_b": [{"role": "user", "content": f"Q{i}"}, {"role": "assistant", "content": "y"}]}
             for i in range(17)]
    oasst = []
    for i in range(9):
        oasst.append({"message_id": f"p{i}", "parent_id": None, "role": "prompter", "text": f"ask {i}", "rank": None})
        oasst += [{"message_id": f"r{i}-{r}", "parent_id": f"p{i}", "role": "assistant", "text": f"reply {i}.{r}",
                   "rank": r} for r in range(3)]
    own = [{"ticket": f"T{i}", "body": f"How much is {i} + {i}?", "answer": 2 * i} for i in range(31)]
    held = [{"ticket": f"E{i}", "body": f"How much is {i} * 3?", "answer": 3 * i} for i in range(7)]
    trivia = [{"id": f"t{i}", "question": f"Which number comes after {i}?", "golden_answers": [str(i + 1)]}
              for i in range(40)] + [{"id": f"w{i}", "question": f"Capital {i}?", "golden_answers": [f"City{i}"]}
                                     for i in range(40)]
    return {"pairs": _write_jsonl(d / "pairs.jsonl", pairs), "human": _write_jsonl(d / "human.jsonl", human),
            "oasst": _write_jsonl(d / "oasst.jsonl", oasst), "own": _write_jsonl(d / "own.jsonl", own),
            "held": _write_jsonl(d / "held.jsonl", held), "trivia": _write_jsonl(d / "trivia.jsonl", trivia)}


def cases(shared: Path, own: dict[str, str]) -> dict[str, tuple[str, dict, int]]:
    """name -> (task, options, n); every case loads train and eval with seeds 0 and 1."""
    rar = shared / "rar"
    return {
        "arithmetic": ("arithmetic", {}, 12),
        "last_letter": ("last_letter", {}, 12),
        "coin_flip": ("coin_flip", {"n_people": 2}, 12),
        "last_letter_rar": ("last_letter", {"source": str(rar / "last_letter_concatenation4_gpt-4.json")}, -1),
        "coin_flip_rar": ("coin_flip", {"source": str(rar / "coin_val_gpt-4.json"), "eval_fraction": 0.3}, -1),
        "coin_flip_raw": ("coin_flip", {"source": str(rar / "raw_coin_val.json")}, 15),
        "coin_flip_kojima": ("coin_flip", {"source": str(shared / "zero_shot_cot" / "coin_flip.json"),
                                           "n_people": 4}, 20),
        "gsm8k_dir": ("gsm8k", {"source": str(shared / "gsm8k")}, 25),
        "gsm8k_file": ("gsm8k", {"source": str(shared / "gsm8k" / "test.jsonl")}, -1),
        "triviaqa": ("triviaqa_opinion", {"path": str(shared / "triviaqa" / "flashrag_test_subsample1000.jsonl")}, 6),
        "triviaqa_own": ("triviaqa_opinion", {"path": own["trivia"], "eval_fraction": 0.25,
                                              "opinions": ["none", "suggest_incorrect"]}, -1),
        "judge_gsm8k_pairs": ("judge", {"source": "gsm8k_pairs", "path": str(shared / "gsm8k")}, 30),
        "judge_pairs": ("judge", {"source": "pairs", "path": own["pairs"], "eval_fraction": 0.3}, -1),
        "judge_mt_bench": ("judge", {"source": "mt_bench_human", "path": own["human"], "keep_ties": False}, -1),
        "judge_oasst2": ("judge", {"source": "oasst2", "path": own["oasst"]}, -1),
        "dataset": ("dataset", {"path": own["own"], "question_field": "body", "id_field": "ticket",
                                "answer_field": "answer", "eval_fraction": 0.3}, -1),
        "dataset_n": ("dataset", {"path": own["own"], "question_field": "body", "answer_field": "answer"}, 5),
        "dataset_eval_file": ("dataset", {"path": own["own"], "eval_path": own["held"], "question_field": "body",
                                          "id_field": "ticket", "answer_field": "answer"}, -1),
    }


def split_digests(shared: Path, own_dir: Path) -> dict[str, str]:
    own = own_files(own_dir)
    out = {}
    for name, (task_name, options, n) in cases(shared, own).items():
        sources = tuple(v for v in options.values() if isinstance(v, str) and ("/" in v))
        for seed in (0, 1):
            task = make_task(TaskConfig(name=task_name, options=options))
            for split in ("train", "eval"):
                out[f"{name}/{split}/{seed}"] = digest(task.load(split, n, seed), sources)
    return out


# recorded at main 47a8cf1 (before the split schemes moved), with ../shared/data
PINNED = {
    'arithmetic/train/0': '9ce7b328281c8442',
    'arithmetic/eval/0': '1c9e008f34cdbbae',
    'arithmetic/train/1': 'cbf727d66859f1c8',
    'arithmetic/eval/1': '516d523d30dcf118',
    'last_letter/train/0': '6bc5b6f93484df3c',
    'last_letter/eval/0': '47790165f948e8c2',
    'last_letter/train/1': '0df85e8a0c8e1eb0',
    'last_letter/eval/1': '99498fca94e311aa',
    'coin_flip/train/0': 'f76d949a788ca119',
    'coin_flip/eval/0': '2a119ba674a440e2',
    'coin_flip/train/1': '489088d8f119751c',
    'coin_flip/eval/1': '2c226d99cbb44f3e',
    'last_letter_rar/train/0': '6dbcb9e3ed495219',
    'last_letter_rar/eval/0': '37f7af631320d007',
    'last_letter_rar/train/1': 'c842040f24150d85',
    'last_letter_rar/eval/1': 'c4201120def360d5',
    'coin_flip_rar/train/0': 'a3100ef2178e5571',
    'coin_flip_rar/eval/0': '24d8952aa223af3e',
    'coin_flip_rar/train/1': 'c12290ce23c2824c',
    'coin_flip_rar/eval/1': '0c973bc76267601d',
    'coin_flip_raw/train/0': '1c35c38c1c64f62d',
    'coin_flip_raw/eval/0': 'c160cd9caf2ade42',
    'coin_flip_raw/train/1': '356aa6ce2ed59216',
    'coin_flip_raw/eval/1': 'fc63b90c2293fc50',
    'coin_flip_kojima/train/0': '939867b12de57c9e',
    'coin_flip_kojima/eval/0': '8fc5763e51518ed6',
    'coin_flip_kojima/train/1': 'f9cb4eaaa3ed379b',
    'coin_flip_kojima/eval/1': 'b837d2c9fb082e83',
    'gsm8k_dir/train/0': 'cc8aee2ca47e4143',
    'gsm8k_dir/eval/0': 'c2d19b9f286a1e6f',
    'gsm8k_dir/train/1': '7985619bff2422c8',
    'gsm8k_dir/eval/1': '7bad5637ab77e52e',
    'gsm8k_file/train/0': '6ad5c3eb6be0048e',
    'gsm8k_file/eval/0': '64a242ed86b1c0eb',
    'gsm8k_file/train/1': '07e6528ae3c7e4ab',
    'gsm8k_file/eval/1': '052ee2dcf0848cd1',
    'triviaqa/train/0': '01064a9e19cb71ea',
    'triviaqa/eval/0': '10eaa3bc7b0218a6',
    'triviaqa/train/1': 'f09cc750faa94793',
    'triviaqa/eval/1': 'e2096d195de57fcc',
    'triviaqa_own/train/0': 'abc041c2e696e7a1',
    'triviaqa_own/eval/0': '95ec68f337c0dadf',
    'triviaqa_own/train/1': 'e563e6ac384f1299',
    'triviaqa_own/eval/1': 'ce43615bf48113be',
    'judge_gsm8k_pairs/train/0': '5340333f1bdba27f',
    'judge_gsm8k_pairs/eval/0': '09ec3b1c5cccf623',
    'judge_gsm8k_pairs/train/1': '0f2bb1ce1da862f3',
    'judge_gsm8k_pairs/eval/1': '8af7bc27b42afe72',
    'judge_pairs/train/0': '7ff9732e998ad56c',
    'judge_pairs/eval/0': '5f6134a9fbc4aca6',
    'judge_pairs/train/1': '9f5be1c6d0822511',
    'judge_pairs/eval/1': '2552433d779981f4',
    'judge_mt_bench/train/0': '81f1b6c3f6443809',
    'judge_mt_bench/eval/0': '3d2340bc915f3e63',
    'judge_mt_bench/train/1': 'f05e652a76de7338',
    'judge_mt_bench/eval/1': '250a2eab650017a7',
    'judge_oasst2/train/0': 'dd5dad821698c398',
    'judge_oasst2/eval/0': 'b46a971fb48667b1',
    'judge_oasst2/train/1': '98fa425b05efb924',
    'judge_oasst2/eval/1': '50fe873a0ba1ab9f',
    'dataset/train/0': '98a7d8ce1e6b862d',
    'dataset/eval/0': '6fe551ebf1348102',
    'dataset/train/1': 'd25659a74af50345',
    'dataset/eval/1': 'f1c48648d779bef6',
    'dataset_n/train/0': '36e1fd050a9305f2',
    'dataset_n/eval/0': '9b883c579e2906ea',
    'dataset_n/train/1': 'df1c378b33b403a3',
    'dataset_n/eval/1': '42d432e7ec53ad27',
    'dataset_eval_file/train/0': 'f34a7c2597c5472b',
    'dataset_eval_file/eval/0': 'bf3f7203b7d00637',
    'dataset_eval_file/train/1': 'e8bd1b74bc5bc876',
    'dataset_eval_file/eval/1': '09126eed70e89207',
}


def test_every_task_split_is_unchanged(shared_data, tmp_path):
    got = split_digests(shared_data, tmp_path)
    assert got == PINNED


if __name__ == "__main__":  # print the digests (to pin them): python tests/test_task_splits.py SHARED_DATA OUT_DIR
    import sys

    for k, v in split_digests(Path(sys.argv[1]), Path(sys.argv[2])).items():
        print(f"    {k!r}: {v!r},")
