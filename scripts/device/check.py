#!/usr/bin/env python3
"""CUDA check of the packed CLI against CPU references (see check.sh, which sets the libraries up and calls this).

Run in the unpacked pkg folder. Modes:
  --make-reference   (here, DEVICE=cpu) write ref/<case>/{gen0,gen1}.json, forward.safetensors, data.csv
  (default)          run every case on $DEVICE (cuda), compare with ref/: generations token for token, logits max
                     abs diff; --device auto must pick cuda; tokens/s on $DEVICE and cpu; a GPT-2-124M-sized speed
                     check. Writes $OUT/check.json; exit 0 only when every generation matches.
No numpy needed.
"""
import concurrent.futures as cf
import json
import os
import shutil
import struct
import subprocess
import sys
import time
from array import array

PKG = os.path.dirname(os.path.abspath(__file__))
CLI = os.path.join(PKG, "cli", "peft-onnx")
DEVICE = os.environ.get("DEVICE", "cuda")
OUT = os.environ.get("OUT") or os.path.join(PKG, "out")
JOBS = int(os.environ.get("JOBS", "8"))
BUDGET_S = float(os.environ.get("BUDGET_S", "150"))  # optional sections are skipped past this
GEN_TOKENS = 16
START = time.time()
LOG = None


def log(msg):
    line = f"[{time.time() - START:6.1f}s] {msg}"
    print(line, flush=True)
    if LOG:
        LOG.write(line + "\n")
        LOG.flush()


def run(args, timeout=60):
    """Runs the CLI; returns (rc, stdout, stderr, seconds)."""
    t = time.time()
    try:
        p = subprocess.run([CLI] + args, capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr, time.time() - t
    except subprocess.TimeoutExpired as e:
        return 124, e.stdout or "", f"timed out after {timeout} s", time.time() - t


def last_json(text):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                pass
    return None


def read_f32(path, name="logits"):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        info = header[name]
        start, end = info["data_offsets"]
        f.seek(8 + n + start)
        a = array("f")
        a.frombytes(f.read(end - start))
        return info["shape"], a


def cases():
    out = []
    for line in open(os.path.join(PKG, "cases.tsv")):
        name, inputs, p0, p1, data = line.rstrip("\n").split("\t")
        out.append({"name": name, "inputs": None if inputs == "-" else inputs, "prompts": [p0, p1],
                    "data": None if data == "-" else data})
    return out


def gen_args(case, prompt, device, tokens=GEN_TOKENS):
    return ["generate", "--onnx", os.path.join(PKG, "tests", case["name"]), "--input-ids", prompt,
            "--max-new-tokens", str(tokens), "--greedy", "--device", device, "--json"]


def data_args(case, device, out_csv):
    return ["generate", "--onnx", os.path.join(PKG, "tests", case["name"]), "--data", os.path.join(PKG, case["data"]),
            "--text-column", "text", "--out", out_csv, "--batch-size", "8", "--max-new-tokens", "8",
            "--device", device, "--json"]


def forward_args(case, device, out_path):
    return ["forward", "--onnx", os.path.join(PKG, "tests", case["name"]), "--inputs", os.path.join(PKG, case["inputs"]),
            "--out", out_path, "--device", device]


def make_reference():
    for case in cases():
        ref = os.path.join(PKG, "ref", case["name"])
        os.makedirs(ref, exist_ok=True)
        for i, prompt in enumerate(case["prompts"]):
            rc, so, se, _ = run(gen_args(case, prompt, "cpu"))
            if rc != 0:
                sys.exit(f"{case['name']}: generate failed: {se.strip()}")
            with open(os.path.join(ref, f"gen{i}.json"), "w") as f:
                f.write(so)
        if case["inputs"]:
            rc, so, se, _ = run(forward_args(case, "cpu", os.path.join(ref, "forward.safetensors")))
            if rc != 0:
                sys.exit(f"{case['name']}: forward failed: {se.strip()}")
        if case["data"]:
            rc, so, se, _ = run(data_args(case, "cpu", os.path.join(ref, "data.csv")))
            if rc != 0:
                sys.exit(f"{case['name']}: generate --data failed: {se.strip()}")
        print(f"reference {case['name']}: ok", flush=True)


def check_case(case, scratch):
    """Everything one case runs on DEVICE; returns its result record."""
    name = case["name"]
    ref = os.path.join(PKG, "ref", name)
    r = {"case": name, "generations": [], "ok": True, "errors": []}
    for i, prompt in enumerate(case["prompts"]):
        want = last_json(open(os.path.join(ref, f"gen{i}.json")).read())
        rc, so, se, _ = run(gen_args(case, prompt, DEVICE))
        got = last_json(so) if rc == 0 else None
        g = {"prompt": prompt, "rc": rc, "device": got and got.get("device"),
             "cpu_reference": want["sequences"], "tokens_per_second": got and got.get("tokens_per_second"),
             "cpu_reference_tokens_per_second": want.get("tokens_per_second")}
        if got is None:
            g["match"] = False
            r["errors"].append(f"generate {i}: rc {rc}: {se.strip().splitlines()[-1] if se.strip() else 'no output'}")
        else:
            g["sequences"] = got["sequences"]
            g["match"] = got["sequences"] == want["sequences"] and got.get("device") == DEVICE
            if not g["match"]:
                first = next((k for k, (a, b) in enumerate(zip(got["sequences"][0], want["sequences"][0])) if a != b), None)
                g["first_difference_at"] = first
        r["generations"].append(g)
        r["ok"] &= g["match"]
    if case["inputs"]:
        out_path = os.path.join(scratch, f"{name}.forward.safetensors")
        rc, so, se, _ = run(forward_args(case, DEVICE, out_path))
        if rc != 0:
            r["forward"] = {"rc": rc, "error": se.strip().splitlines()[-1] if se.strip() else ""}
            r["errors"].append(f"forward: rc {rc}: {r['forward']['error']}")
        else:
            ws, want = read_f32(os.path.join(ref, "forward.safetensors"))
            gs, got = read_f32(out_path)
            if ws != gs:
                r["forward"] = {"rc": 0, "error": f"shape {gs} vs reference {ws}"}
            else:
                diff = max(abs(a - b) for a, b in zip(got, want))
                top1 = argmax_agreement(got, want, ws[-1])
                r["forward"] = {"rc": 0, "shape": ws, "max_abs_diff": diff, "within_1e-4": diff <= 1e-4,
                                "top1_agreement": top1}
    if case["data"]:
        out_csv = os.path.join(scratch, f"{name}.data.csv")
        rc, so, se, _ = run(data_args(case, DEVICE, out_csv))
        if rc != 0:
            r["data"] = {"rc": rc, "match": False}
            r["errors"].append(f"generate --data: rc {rc}: {se.strip().splitlines()[-1] if se.strip() else ''}")
            r["ok"] = False
        else:
            same = open(out_csv).read() == open(os.path.join(ref, "data.csv")).read()
            info = last_json(so) or {}
            r["data"] = {"rc": 0, "match": same, "rows": info.get("rows"), "seconds": info.get("seconds"),
                         "device": info.get("device")}
            r["ok"] &= same and info.get("device") == DEVICE
    return r


def argmax_agreement(got, want, vocab):
    rows = len(want) // vocab
    same = 0
    for i in range(rows):
        a = got[i * vocab:(i + 1) * vocab]
        b = want[i * vocab:(i + 1) * vocab]
        same += max(range(vocab), key=a.__getitem__) == max(range(vocab), key=b.__getitem__)
    return f"{same}/{rows}"


def speed(case_names, all_cases):
    """Sequential (one process at a time) generate runs on DEVICE and cpu: the CLI's own tokens/s."""
    rows = []
    by_name = {c["name"]: c for c in all_cases}
    for name in case_names:
        if time.time() - START > BUDGET_S:
            log(f"speed: time budget reached, skipping the rest from {name}")
            break
        c = by_name[name]
        row = {"case": name}
        for dev in dict.fromkeys((DEVICE, "cpu")):
            rc, so, se, secs = run(gen_args(c, c["prompts"][0], dev, tokens=64))
            j = last_json(so) if rc == 0 else None
            row[dev] = {"tokens_per_second": j and j["tokens_per_second"], "new_tokens": j and j["new_tokens"],
                        "generate_seconds": j and j["seconds"], "process_seconds": round(secs, 2), "rc": rc}
        rows.append(row)
        log(f"speed {name:22s} {DEVICE}: {row[DEVICE]['tokens_per_second']} tok/s ({row[DEVICE]['new_tokens']} tokens, "
            f"process {row[DEVICE]['process_seconds']} s)   cpu: {row['cpu']['tokens_per_second']} tok/s "
            f"(process {row['cpu']['process_seconds']} s)")
    return rows


def big_speed(scratch):
    """GPT-2-124M-sized random checkpoint (written with numpy), exported fp32 here; 128 new tokens, batch 1 and 8."""
    res = {}
    hf = os.path.join(scratch, "gpt2-124m")
    onnx = os.path.join(scratch, "gpt2-124m-onnx")
    t = time.time()
    p = subprocess.run([sys.executable, os.path.join(PKG, "make_gpt2_124m.py"), hf, os.path.join(PKG, "tests", "bloomfin-base")],
                       capture_output=True, text=True)
    if p.returncode != 0:
        return {"skipped": f"checkpoint: {p.stderr.strip().splitlines()[-1] if p.stderr.strip() else p.returncode}"}
    res["checkpoint_seconds"] = round(time.time() - t, 1)
    rc, so, se, secs = run(["export", "--base", hf, "--out", onnx, "--force", "--json"], timeout=100)
    if rc != 0:
        return {"skipped": f"export rc {rc}: {se.strip().splitlines()[-1] if se.strip() else ''}"}
    res["export_seconds"] = round(secs, 1)
    log(f"big: checkpoint {res['checkpoint_seconds']} s, export {res['export_seconds']} s")
    prompt = "464,2068,7586,21831,18045,625,262,16931"
    rows = os.path.join(scratch, "big8.jsonl")
    with open(rows, "w") as f:
        for i in range(8):
            f.write(json.dumps({"text": f"row {i}: the quarterly results were better than expected"}) + "\n")
    for dev in (DEVICE, "cpu"):
        if time.time() - START > BUDGET_S + 40:
            res[dev] = "skipped: time budget"
            continue
        rc, so, se, secs = run(["generate", "--onnx", onnx, "--input-ids", prompt, "--max-new-tokens", "128",
                                "--greedy", "--device", dev, "--json"], timeout=60)
        j = last_json(so) if rc == 0 else None
        b1 = {"rc": rc, "tokens_per_second": j and j["tokens_per_second"], "new_tokens": j and j["new_tokens"],
              "seconds": j and j["seconds"], "sequence": j and j["sequences"][0]}
        if rc != 0:
            b1["error"] = se.strip().splitlines()[-1] if se.strip() else ""
        rc, so, se, secs = run(["generate", "--onnx", onnx, "--data", rows, "--text-column", "text",
                                "--out", os.path.join(scratch, f"big8-{dev}.csv"), "--batch-size", "8",
                                "--max-new-tokens", "128", "--device", dev, "--json"], timeout=60)
        j = last_json(so) if rc == 0 else None
        b8 = {"rc": rc, "rows": j and j["rows"], "seconds": j and j["seconds"],
              "note": "labelling seconds for 8 rows x up to 128 new tokens (stops early only at eos)"}
        if rc != 0:
            b8["error"] = se.strip().splitlines()[-1] if se.strip() else ""
        res[dev] = {"batch1": b1, "batch8": b8}
        log(f"big {dev}: batch 1 {b1['tokens_per_second']} tok/s ({b1['new_tokens']} tokens in {b1['seconds']} s); "
            f"batch 8: {b8['seconds']} s for 8 rows x 128 tokens")
    if isinstance(res.get(DEVICE), dict) and isinstance(res.get("cpu"), dict):
        res["batch1_sequences_equal"] = res[DEVICE]["batch1"]["sequence"] == res["cpu"]["batch1"]["sequence"]
        c1, c2 = (os.path.join(scratch, f"big8-{d}.csv") for d in (DEVICE, "cpu"))
        res["batch8_labels_equal"] = os.path.exists(c1) and os.path.exists(c2) and open(c1).read() == open(c2).read()
    for d in (DEVICE, "cpu"):
        if isinstance(res.get(d), dict):
            res[d]["batch1"].pop("sequence", None)
    shutil.rmtree(hf, ignore_errors=True)
    return res


def main():
    global LOG
    if "--make-reference" in sys.argv:
        make_reference()
        return 0
    os.makedirs(OUT, exist_ok=True)
    if not os.environ.get("CHECK_SH"):  # check.sh already copies stdout to $OUT/check.log
        LOG = open(os.path.join(OUT, "check.log"), "a")
    scratch = os.environ.get("SCRATCH", "/tmp/peft-onnx-check")
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch)
    all_cases = cases()
    summary = {"device": DEVICE, "cases": [], "env": {"LD_LIBRARY_PATH": os.environ.get("LD_LIBRARY_PATH", "")}}

    # 1. one plain start first: if CUDA cannot start at all, say why once instead of once per case
    c0 = all_cases[0]
    rc, so, se, secs = run(gen_args(c0, c0["prompts"][0], DEVICE))
    summary["first_start"] = {"rc": rc, "seconds": round(secs, 2), "stderr": se.strip()[-800:], "stdout": so.strip()[-400:]}
    log(f"first start on {DEVICE}: rc {rc} in {secs:.1f} s {se.strip()[-300:]}")
    if rc != 0:
        summary["all_generations_match"] = False
        summary["verdict"] = f"{DEVICE} cannot start: {se.strip().splitlines()[-1] if se.strip() else rc}"
        log(summary["verdict"])
        json.dump(summary, open(os.path.join(OUT, "check.json"), "w"), indent=1)
        return 1

    # 2. --device auto must choose cuda
    if DEVICE == "cuda":
        rc, so, se, _ = run(gen_args(c0, c0["prompts"][0], "auto"))
        j = last_json(so) if rc == 0 else None
        summary["auto"] = {"rc": rc, "device": j and j.get("device"), "stderr": se.strip()[-300:],
                           "picks_cuda": bool(j and j.get("device") == "cuda" and "auto chose cuda" in se)}
        log(f"auto: {summary['auto']}")

    # 3. every case, JOBS at a time (correctness; tokens/s here are with JOBS processes sharing the GPU)
    with cf.ThreadPoolExecutor(JOBS) as pool:
        for r in pool.map(lambda c: check_case(c, scratch), all_cases):
            summary["cases"].append(r)
            gens = " ".join("ok" if g["match"] else f"MISMATCH(at {g.get('first_difference_at')})" for g in r["generations"])
            fw = r.get("forward")
            fws = "" if fw is None else (f" logits max|diff| {fw['max_abs_diff']:.3g} top1 {fw['top1_agreement']}" if "max_abs_diff" in fw else f" forward ERROR {fw.get('error')}")
            ds = "" if "data" not in r else f" data(batch 8) {'ok' if r['data']['match'] else 'MISMATCH'}"
            tps = ",".join(str(g.get("tokens_per_second")) for g in r["generations"])
            log(f"{'PASS' if r['ok'] else 'FAIL'} {r['case']:22s} gen {gens}{fws}{ds} tok/s[{tps}] {'; '.join(r['errors'])}")

    save(summary)  # partial results survive a timeout of the whole command

    # 4. speed, one process at a time
    names = [c["name"] for c in all_cases]
    pick = [n for n in names if n.endswith("-base") or n.endswith("-lora-unmerged")]
    summary["speed"] = speed(pick, all_cases)

    save(summary)

    # 5. the 124M check
    if DEVICE != "cpu" or os.environ.get("BIG", "0") == "1":
        if time.time() - START < BUDGET_S:
            summary["gpt2_124m"] = big_speed(scratch)
        else:
            summary["gpt2_124m"] = {"skipped": "time budget"}

    diffs = [r["forward"]["max_abs_diff"] for r in summary["cases"] if "max_abs_diff" in (r.get("forward") or {})]
    summary["logits_max_abs_diff"] = max(diffs) if diffs else None
    summary["logits_cases_over_1e-4"] = [r["case"] for r in summary["cases"] if (r.get("forward") or {}).get("max_abs_diff", 0) > 1e-4]
    summary["forward_errors"] = [r["case"] for r in summary["cases"] if "error" in (r.get("forward") or {})]
    summary["all_generations_match"] = all(r["ok"] for r in summary["cases"])
    failed = [r["case"] for r in summary["cases"] if not r["ok"]]
    summary["failed_cases"] = failed
    summary["seconds"] = round(time.time() - START, 1)
    summary["verdict"] = ("PASS" if not failed else "FAIL") + f": {len(summary['cases']) - len(failed)}/{len(summary['cases'])} cases' generations match on {DEVICE}; " \
        f"logits max|diff| {summary['logits_max_abs_diff']}; over 1e-4: {summary['logits_cases_over_1e-4'] or 'none'}; forward errors: {summary['forward_errors'] or 'none'}"
    log(summary["verdict"])
    save(summary)
    return 0 if not failed else 1


def save(summary):
    with open(os.path.join(OUT, "check.json.tmp"), "w") as f:
        json.dump(summary, f, indent=1)
    os.replace(os.path.join(OUT, "check.json.tmp"), os.path.join(OUT, "check.json"))


if __name__ == "__main__":
    sys.exit(main())
