"""The report of a run: ratios to the reference, one matmul peak per kernel
family, the speed targets, the markdown tables, the progress lines, the JSON."""

import json
import os
import pathlib
import time

from speed.configs import INFER_BATCHES, PRETRAIN_BATCH, REFERENCE_IMPL, TRAIN_BATCH
from speed.registry import IMPLS


def add_ratios(rows):
    refs = {(r["model"], r["mode"], r["batch_size"]): r["clips_per_s"] for r in rows
            if r["impl"] == REFERENCE_IMPL.get(r["model"]) and r["dtype"] == "float32" and "clips_per_s" in r}
    for r in rows:
        ref = refs.get((r["model"], r["mode"], r["batch_size"]))
        r["ratio_vs_reference"] = (r["clips_per_s"] / ref) if ref and "clips_per_s" in r else None
    return rows


def kernel_family(r):
    """Rows whose matmuls run on the same kernels (the row's runner says which:
    every torch row, keras_har's torch backend and the references, shares one;
    jax, tensorflow `xla` and `graph` apart), in the same dtype on one device."""
    runner = IMPLS.get(r["impl"])  # a saved run may hold rows of a kind this checkout lacks: apart
    framework, kernels = runner.matmul_kernels(r) if runner else (r["impl"], "")
    dtype = "float32" if r["dtype"] == "float32" else "bfloat16"
    return framework, kernels, dtype, r.get("device", "")


def pool_matmul_peaks(rows):
    """One matmul peak per kernel family and dtype: the best of the run's
    measurements: a single 2048^2 matmul timed in one worker varies with the
    machine's load, and a low reading would give fractions above 100%. Each
    worker's own reading stays in `matmul_peak_worker_gflops`."""
    best = {}
    for r in rows:
        if r.get("matmul_peak_gflops"):
            r.setdefault("matmul_peak_worker_gflops", r["matmul_peak_gflops"])
            key = kernel_family(r)
            best[key] = max(best.get(key, 0.0), r["matmul_peak_worker_gflops"])
    for r in rows:
        if r.get("matmul_peak_gflops"):
            r["matmul_peak_gflops"] = best[kernel_family(r)]
            if "achieved_gflops" in r:
                r["peak_fraction"] = r["achieved_gflops"] / r["matmul_peak_gflops"]
    return rows


def _setting(r):
    if r["impl"] == "keras_har":
        return f"{r['backend']}/{r['variant']} {r['dtype']}"
    if r["impl"] == "exported":
        return f"exported {r['variant']} {r['dtype']}"
    return f"{r['impl']} {r['dtype']}"


def same_setting(r):
    """The keys that make two rows of different modes the same setting."""
    return r["model"], r["impl"], r["backend"], r["variant"], r["dtype"]


def pretrain_speedups(rows, model="videomae"):
    """Per setting with both rows in this run: a pre-training step's clips/s
    over a fine-tuning step's (the `train` row of the same model, impl,
    backend, variant and dtype at the same batch)."""
    train = {same_setting(r): r for r in rows if r["model"] == model and r["mode"] == "train"
             and r["batch_size"] == PRETRAIN_BATCH and "clips_per_s" in r}
    out = []
    for r in rows:
        if r["model"] == model and r["mode"] == "pretrain" and "clips_per_s" in r and same_setting(r) in train:
            t = train[same_setting(r)]
            out.append(dict(setting=_setting(r), impl=r["impl"], backend=r["backend"], variant=r["variant"],
                            dtype=r["dtype"], batch_size=r["batch_size"], pretrain_step_s=r["step_time_s"],
                            train_step_s=t["step_time_s"], speedup=r["clips_per_s"] / t["clips_per_s"]))
    return out


def pretrain_speedups_markdown(speedups):
    lines = ["| setting | pre-training step s | fine-tuning step s | pre-training speed-up |", "|---|---|---|---|"]
    for s in speedups:
        lines.append(f"| {s['setting']} | {s['pretrain_step_s']:.3g} | {s['train_step_s']:.3g} | {s['speedup']:.2f}x |")
    return "\n".join(lines)


def check_targets(rows, model="videomae"):
    """The speed targets, from the rows of this run (a target whose rows are
    missing is reported as not measured; the targets of a mode with no row in
    the run at all are left out, e.g. the pre-training ones of a default run)."""
    ok = [r for r in rows if r["model"] == model and "clips_per_s" in r]
    modes = {r["mode"] for r in rows if r["model"] == model}
    ref_impl = REFERENCE_IMPL[model]

    def pick(**kw):
        return [r for r in ok if all(r.get(k) == v for k, v in kw.items())]

    def best(rs):
        return max(rs, key=lambda r: r["clips_per_s"]) if rs else None

    targets = []

    def add(name, threshold, ours, theirs, label=_setting):
        value = ours["clips_per_s"] / theirs["clips_per_s"] if ours and theirs else None
        targets.append(dict(
            target=name, threshold=threshold, value=value,
            met=None if value is None else value >= threshold,
            ours=label(ours) if ours else None, reference=label(theirs) if theirs else None,
            ours_clips_per_s=ours and ours["clips_per_s"], reference_clips_per_s=theirs and theirs["clips_per_s"]))

    if "pretrain" in modes:
        b = PRETRAIN_BATCH
        add(f"pretrain b{b}: fastest keras_har >= 1.0x the best {ref_impl} setting", 1.0,
            best(pick(impl="keras_har", mode="pretrain", batch_size=b)),
            best(pick(impl=ref_impl, mode="pretrain", batch_size=b)))
        # Same backend, variant and dtype: the pre-training step against the fine-tuning (train) step.
        settings = dict.fromkeys(same_setting(r) for r in rows if r["model"] == model and r["impl"] == "keras_har"
                                 and r["mode"] == "pretrain" and r["batch_size"] == b)
        for _, impl, backend, variant, dtype in settings:
            same = dict(impl=impl, backend=backend, variant=variant, dtype=dtype, batch_size=b)
            add(f"pretrain b{b} {backend}/{variant} {dtype}: >= 4.0x a fine-tuning step (train b{b}), same setting",
                4.0, best(pick(mode="pretrain", **same)), best(pick(mode="train", **same)),
                label=lambda r: f"{_setting(r)} {r['mode']}")
    for b in INFER_BATCHES if "inference" in modes else ():
        ours = best(pick(impl="keras_har", mode="inference", batch_size=b))
        add(f"inference b{b}: fastest keras_har >= 2.0x {ref_impl} float32", 2.0, ours,
            best(pick(impl=ref_impl, mode="inference", batch_size=b, dtype="float32")))
        add(f"inference b{b}: fastest keras_har >= 1.0x the best {ref_impl} setting", 1.0, ours,
            best(pick(impl=ref_impl, mode="inference", batch_size=b)))
    for b in INFER_BATCHES if "inference" in modes else ():  # any backend or exported runtime, against the cast-to-bf16 reference
        add(f"inference b{b}: fastest keras-har path (any backend or exported runtime) >= 1.3x "
            f"{ref_impl} bfloat16 (model cast)", 1.3,
            best([r for r in pick(mode="inference", batch_size=b) if r["impl"] in ("keras_har", "exported")]),
            best(pick(impl=ref_impl, mode="inference", batch_size=b, dtype="bfloat16")))
    if "train" in modes:
        add(f"train b{TRAIN_BATCH}: jax float32 >= 1.3x {ref_impl} float32", 1.3,
            best(pick(impl="keras_har", backend="jax", dtype="float32", mode="train")),
            best(pick(impl=ref_impl, dtype="float32", mode="train")))
    # Same precision: float32 against float32, mixed_bfloat16 against autocast.
    pairs = [("inference", x) for x in INFER_BATCHES] + [("train", TRAIN_BATCH)]
    for dtype in ("float32", "mixed_bfloat16"):
        for mode, b in [(m, x) for m, x in pairs if m in modes]:
            add(f"torch backend {mode} b{b} {dtype}: within 1.15x of {ref_impl} (>= 1/1.15)", 1 / 1.15,
                best(pick(impl="keras_har", backend="torch", variant="eager", dtype=dtype, mode=mode,
                          batch_size=b)),
                best(pick(impl=ref_impl, dtype=dtype, mode=mode, batch_size=b)))
    return targets


def targets_markdown(targets):
    lines = ["| target | measured | met | keras_har setting | reference setting |", "|---|---|---|---|---|"]
    for t in targets:
        value = "not measured" if t["value"] is None else f"{t['value']:.2f}x"
        met = "-" if t["met"] is None else ("yes" if t["met"] else "**no**")
        lines.append(f"| {t['target']} | {value} | {met} | {t['ours'] or '-'} | {t['reference'] or '-'} |")
    return "\n".join(lines)


def markdown_table(rows):
    head = ("| model | impl | backend | variant | dtype | mode | batch | clips/s | vs ref | step s "
            "| GFLOP/s | % of matmul peak | matmul peak GFLOP/s | compile s | peak RSS MB "
            "| vs float32: max abs dlogit, top-1 agree (clips) |")
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for r in rows:
        if "clips_per_s" not in r:
            lines.append(f"| {r['model']} | {r['impl']} | {r['backend']} | {r['variant']} | {r['dtype']} "
                         f"| {r['mode']} | {r['batch_size']} | failed: {r.get('error', '')[:80]} "
                         "| | | | | | | | |")
            continue
        ratio = f"{r['ratio_vs_reference']:.2f}x" if r.get("ratio_vs_reference") else "-"
        rss = f"{r['peak_rss_mb']:.0f}"
        if r.get("device_peak_mb"):
            rss += f" (device {r['device_peak_mb']:.0f})"
        fraction = f"{100 * r['peak_fraction']:.0f}%" if r.get("peak_fraction") is not None else "-"
        peak = f"{r['matmul_peak_gflops']:.0f}" if r.get("matmul_peak_gflops") else "-"
        lines.append(
            f"| {r['model']} | {r['impl']} | {r['backend']} | {r['variant']} | {r['dtype']} | {r['mode']} "
            f"| {r['batch_size']} | {r['clips_per_s']:.3g} | {ratio} | {r['step_time_s']:.3g} "
            f"| {r['achieved_gflops']:.0f} | {fraction} | {peak} "
            f"| {r['compile_time_s']:.1f} | {rss} | {accuracy_cell(r)} |")
    return "\n".join(lines)


def accuracy_cell(r):
    """The accuracy cost of a reduced-precision exported row against float32."""
    if "max_logit_diff" in r:
        return f"{r['max_logit_diff']:.2g}, {r['top1_agreement']:.3f} ({r['accuracy_clips']})"
    if r.get("accuracy_reference"):
        return f"(the reference, {r['accuracy_clips']} clips)"
    if r.get("extra_fields_error"):
        return "failed: " + r["extra_fields_error"][:60]
    return ""


def progress_line(row, done, total, start):
    head = (f"[{done}/{total} {time.perf_counter() - start:5.0f} s] {row['model']} {row['impl']} "
            f"{row['backend']}/{row['variant']} {row['dtype']} {row['mode']} b{row['batch_size']}: ")
    if "clips_per_s" not in row:
        return head + "failed: " + row.get("error", "")[:200]
    accuracy = f", vs float32 {accuracy_cell(row)}" if accuracy_cell(row) else ""
    return head + (f"{row['clips_per_s']:.3g} clips/s, {row['step_time_s']:.3g} s/step, "
                   f"compile {row['compile_time_s']:.1f} s, RSS {row['peak_rss_mb'] / 1024:.1f} GB, "
                   f"load {os.getloadavg()[0]:.1f}{accuracy}")


def report_markdown(machine, rows, targets, speedups):
    """The run's summary line, table, targets and pre-training speed-ups, as markdown."""
    parts = [f"CPU: {machine['cpu']} ({machine['cpu_count']} cores, {machine['memory_gb']} GB); "
             f"allocator {machine['allocator']}; load average before {machine['load_average_before']}, "
             f"after {machine['load_average_after']}; wall {machine['wall_time_s']:.0f} s",
             markdown_table(rows)]
    if machine.get("quick"):
        parts.insert(1, "`--quick`: tiny models. It checks that every row runs; its speeds say nothing about "
                        "VideoMAE-B or ViT-S.")
    if targets:
        parts += ["Targets (VideoMAE-B, this run):", targets_markdown(targets)]
    if speedups:
        parts += [f"Pre-training step vs fine-tuning step (VideoMAE, batch {PRETRAIN_BATCH}, same setting, this run):",
                  pretrain_speedups_markdown(speedups)]
    return "\n\n".join(parts)


def markdown(result):
    """The tables of a saved `--json` (its documentation page)."""
    return report_markdown(result["machine"], result["results"], result["targets"], result["pretrain_speedups"])


def print_report(machine, rows, json_path=None, targets=None):
    """The table and the targets (computed from the rows unless given); with
    json_path, also the JSON. Returns the JSON's content."""
    rows = pool_matmul_peaks(add_ratios(rows))
    if targets is None:
        targets = check_targets(rows)
    speedups = pretrain_speedups(rows)
    print(report_markdown(machine, rows, targets, speedups))
    result = {"machine": machine, "results": rows, "targets": targets, "pretrain_speedups": speedups}
    if json_path:
        pathlib.Path(json_path).write_text(json.dumps(result, indent=1))
    return result
