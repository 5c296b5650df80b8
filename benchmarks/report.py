"""The run's report: one JSON document and a short text summary built from it.

The summary is written for a reader who wants three answers: how many authorizations per
second at what latency, how far that is from a bare gRPC ceiling on the same machine in the same
run, and whether the figures can be trusted (generator CPU, other load on the machine).
"""

from __future__ import annotations

import os
import platform
from typing import Any

from benchmarks import overload, soak
from benchmarks.procstat import load_average
from benchmarks.suite import Outcome

SCHEMA = "payswitch-bench/1"
OTHER_LOAD_PCT = 10.0  # of the machine: above this, other work skews the figures
GENERATOR_BUSY_PCT = 85.0  # of one core: above this the generator may be what limits
EMV_HOOK = (
    "EMV (chip, ARQC) authorizations: the mix had none (the card simulator made no ARQC: see "
    "the notes)"
)
PIN_MISSING = (
    "PIN authorizations: no card in the topology has a PIN, so the mix sent none "
    '(give a card `pin = "1234"` in topology/default.toml)'
)


def _peak(phases: list[dict[str, Any]], target: str) -> dict[str, Any] | None:
    closed = [p for p in phases if p["target"] == target and p["mode"] == "closed"]
    return max(closed, key=lambda p: p["throughput_rps"]) if closed else None


def _pct(a: float | None, b: float | None) -> float | None:
    return round(100.0 * a / b, 1) if a is not None and b else None


def _sub(a: float | None, b: float | None) -> float | None:
    return round(a - b, 3) if a is not None and b is not None else None


def build(out: Outcome, files: dict[str, str]) -> dict[str, Any]:
    s = out.settings
    phases = []
    for phase in out.phases:
        summary = phase.summary(s.deadline_s)
        summary["series"] = phase.series()
        phases.append(summary)
    sw_peak, echo_peak, chain_peak = (_peak(phases, t) for t in ("payswitch", "echo", "chain4"))
    open_sw = [p for p in phases if p["mode"] == "open" and p["workload"] == "approvals"]
    own_added: dict[str, Any] = {}
    for c in s.concurrency:
        sw = out.switch_added.get(f"closed c={c}", {}).get("switch_added_ms", {})
        fw = out.forwarder_added.get(f"chain4 c={c}", {}).get("all_forwarders", {})
        if sw.get("n") and fw.get("n"):
            own_added[f"c={c}"] = {
                "switch_added_p50": sw["p50"],
                "bare_forwarder_added_p50": fw["p50"],
                "switch_own_p50": _sub(sw["p50"], fw["p50"]),
                "switch_added_p99": sw["p99"],
                "bare_forwarder_added_p99": fw["p99"],
                "switch_own_p99": _sub(sw["p99"], fw["p99"]),
            }
    gen = [
        (p["name"], p["cpu"].get("core_pct", {}).get("generator", 0.0))
        for p in phases
        if p.get("cpu")
    ]
    busy = [name for name, pct in gen if pct >= GENERATOR_BUSY_PCT]
    other = sum(p["cpu"].get("other_cpu_s", 0.0) for p in phases if p.get("cpu"))
    capacity = sum(p["cpu"].get("machine_capacity_cpu_s", 0.0) for p in phases if p.get("cpu"))
    mix = next((p for p in phases if p["workload"] == "mix"), None)
    return {
        "schema": SCHEMA,
        "started_at": out.started_at,
        "wall_s": out.wall_s,
        "machine": {
            "system": f"{platform.system()} {platform.release()} {platform.machine()}",
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_start": out.load_average_start,
            "load_average_end": load_average(),
        },
        "settings": {k: (str(v) if k == "out_dir" else v) for k, v in vars(s).items()},
        "stack": out.stack_info,
        "warmup": out.warmup.summary(s.deadline_s) if out.warmup else None,
        "phases": phases,
        "open_loop": {
            "offered_rps": [p["offered_rps"] for p in open_sw],
            "criterion": {
                "p99_below_ms": s.p99_target_ms,
                "deadline_misses": 0,
                "errors": 0,
                "deadline_s": s.deadline_s,
            },
            "best_rate_rps": out.best_rate,
        },
        "mix": {"phase": mix["name"] if mix else None, **out.mix_checks},
        "overload": out.overload or {"ran": False},
        "switch_added": out.switch_added,
        "forwarder_added": out.forwarder_added,
        "ceiling": {
            "payswitch_peak_rps": sw_peak["throughput_rps"] if sw_peak else None,
            "payswitch_peak_phase": sw_peak["name"] if sw_peak else None,
            "echo_peak_rps": echo_peak["throughput_rps"] if echo_peak else None,
            "echo_peak_phase": echo_peak["name"] if echo_peak else None,
            "chain4_peak_rps": chain_peak["throughput_rps"] if chain_peak else None,
            "chain4_peak_phase": chain_peak["name"] if chain_peak else None,
            "payswitch_pct_of_echo": _pct(
                sw_peak and sw_peak["throughput_rps"], echo_peak and echo_peak["throughput_rps"]
            ),
            "payswitch_pct_of_chain4": _pct(
                sw_peak and sw_peak["throughput_rps"], chain_peak and chain_peak["throughput_rps"]
            ),
            "switch_own_added_ms": own_added,
        },
        "cpu_per_auth": _cpu_per_auth(sw_peak, chain_peak, out.stack_info),
        "risk_compare": _risk_compare(out.risk_compare),
        "soak": out.soak or {"ran": False},
        "profile": out.profile or {"ran": False, "reason": "not asked (--profile)"},
        "ghz": out.ghz or {"ran": False, "reason": "disabled (--no-ghz)"},
        "deps": out.deps or {"ran": False, "reason": "disabled (--no-deps)"},
        "honesty": {
            "generator_core_pct_by_phase": dict(gen),
            "generator_busy_phases": busy,
            "other_processes_share_of_machine_pct": round(100 * other / capacity, 1)
            if capacity
            else None,
        },
        "not_covered": ([] if out.mix_checks.get("weights", {}).get("emv") else [EMV_HOOK])
        + ([] if out.mix_checks.get("weights", {}).get("pin") else [PIN_MISSING]),
        "notes": out.notes,
        "files": files,
    }


def _cpu_per_auth(
    sw_peak: dict[str, Any] | None, chain_peak: dict[str, Any] | None, stack: dict[str, Any]
) -> dict[str, Any]:
    """CPU ms per answered request of every process at the closed-loop peak (issue 19's
    figure: the switch's own, then each node's), beside the bare chain's at its peak."""
    if sw_peak is None:
        return {}
    per = sw_peak.get("cpu_ms_per_request", {})
    kinds = stack.get("processes", {})
    switches = [n for n, k in kinds.items() if k == "switch" and n in per]
    out: dict[str, Any] = {
        "phase": sw_peak["name"],
        "switch_ms": round(sum(per[n] for n in switches), 3) if switches else None,
        "switches": len(switches),
        "network_nodes_ms": round(
            sum(v for n, v in per.items() if n in kinds and n not in switches), 3
        ),
        "store_statements_per_auth": sw_peak.get("store_statements_per_request", {}),
        "generator_ms": per.get("generator"),
        "by_process_ms": per,
    }
    if chain_peak is not None:
        bare = chain_peak.get("cpu_ms_per_request", {})
        out["chain4_phase"] = chain_peak["name"]
        out["chain4_by_process_ms"] = bare
    return out


RISK_P99_TARGET_MS = 2.0  # issue 14: the stage's own p99 at the benchmark's peak
RISK_THROUGHPUT_PCT = 90.0  # issue 14: with the stage, at least this share of without


def _risk_compare(rc: dict[str, Any]) -> dict[str, Any]:
    """Issue 14's figures: the closed-loop peak's level in alternating rounds on the stack with
    the risk stage and on a second stack without it, in the same run (throughputs: the rounds'
    means); the stage's own p99 at the sweep's peak and in each round."""
    if not rc or not rc.get("rounds"):
        return {"ran": False}
    peak = rc["with_risk"]
    rounds = rc["rounds"]
    w = [r["with_risk"]["throughput_rps"] for r in rounds]
    wo = [r["without_risk"]["throughput_rps"] for r in rounds]
    with_rps, without_rps = round(sum(w) / len(w), 1), round(sum(wo) / len(wo), 1)
    pct = _pct(with_rps, without_rps)
    stage = peak.get("stage_ms", {}).get("risk", {})
    p99 = stage.get("p99_ms")
    last = rounds[-1]
    return {
        "ran": True,
        "concurrency": peak["concurrency"],
        "rounds": len(rounds),
        "with_risk_rps": with_rps,
        "without_risk_rps": without_rps,
        "with_pct_of_without": pct,
        "round_pcts": [_pct(a, b) for a, b in zip(w, wo, strict=True)],
        "throughput_within_10pct": pct is not None and pct >= RISK_THROUGHPUT_PCT,
        "risk_stage_ms": stage,
        "round_risk_p99_ms": [
            r["with_risk"].get("stage_ms", {}).get("risk", {}).get("p99_ms") for r in rounds
        ],
        "risk_p99_within_2ms": p99 is not None and p99 <= RISK_P99_TARGET_MS,
        "with_risk_latency_ms": last["with_risk"]["latency_ms"],
        "without_risk_latency_ms": last["without_risk"]["latency_ms"],
        "without_risk_errors": sum(r["without_risk"]["error_count"] for r in rounds),
        "without_risk_cpu_ms_per_request": last["without_risk"].get("cpu_ms_per_request", {}),
    }


def _risk_lines(r: dict[str, Any]) -> list[str]:
    if not r.get("ran"):
        return []
    st = r["risk_stage_ms"]
    return [
        "",
        f"risk stage at the closed-loop peak (c={r['concurrency']:g}): its own p50 <= "
        f"{st.get('p50_ms')} p99 <= {st.get('p99_ms')} ms (target p99 <= "
        f"{RISK_P99_TARGET_MS:g} ms: {'met' if r['risk_p99_within_2ms'] else 'NOT met'})",
        f"  throughput with it {r['with_risk_rps']} rps, without it (same level, second stack) "
        f"{r['without_risk_rps']} rps: {r['with_pct_of_without']}% (target >= "
        f"{RISK_THROUGHPUT_PCT:g}%: {'met' if r['throughput_within_10pct'] else 'NOT met'}); "
        f"p99 {_ms(r['with_risk_latency_ms']['p99'])} vs "
        f"{_ms(r['without_risk_latency_ms']['p99'])} ms",
        f"  {r['rounds']} alternating round(s): with/without {r['round_pcts']} %, the stage's "
        f"p99 <= {r['round_risk_p99_ms']} ms",
    ]


def _cpu_lines(c: dict[str, Any], profile: dict[str, Any]) -> list[str]:
    if not c:
        return []
    lines = [
        "",
        f"CPU per authorization at the closed-loop peak ({c['phase']}): switch "
        f"{_ms(c['switch_ms'])} ms, network nodes together {_ms(c['network_nodes_ms'])} ms, "
        f"generator {_ms(c['generator_ms'])} ms",
        "  by process: "
        + ", ".join(f"{n} {_ms(v)}" for n, v in sorted(c["by_process_ms"].items())),
    ]
    if c.get("store_statements_per_auth"):
        lines.append(
            "  store statements per authorization: "
            + ", ".join(f"{k} {v:g}" for k, v in c["store_statements_per_auth"].items())
        )
    if "chain4_by_process_ms" in c:
        lines.append(
            f"  bare 4-hop chain ({c['chain4_phase']}), per request: "
            + ", ".join(f"{n} {_ms(v)}" for n, v in sorted(c["chain4_by_process_ms"].items()))
        )
    if profile.get("ran"):
        lines.append(f"  flame graph of the switch (c={profile['concurrency']}): {profile['svg']}")
    elif profile.get("reason") and "not asked" not in profile["reason"]:
        lines.append(f"  flame graph: not made ({profile['reason']})")
    return lines


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def _row(p: dict[str, Any], first: str) -> str:
    lat = p["latency_ms"]
    cpu = p.get("cpu", {})
    gen = cpu.get("core_pct", {}).get("generator")
    other = cpu.get("other_cpu_s")
    cap = cpu.get("machine_capacity_cpu_s") or 0
    return (
        f"  {first:<14}{p['throughput_rps']:>8.1f}"
        + "".join(f"{_ms(lat[k]):>8}" for k in ("p50", "p90", "p99", "p99.9", "max"))
        + f"{p['error_count']:>7}{p['deadline_misses']:>7}"
        + f"{'-' if gen is None else f'{gen:.0f}':>6}"
        + f"{'-' if not cap else f'{100 * other / cap:.0f}':>7}"
        + _risk(p)
    )


def _risk(p: dict[str, Any]) -> str:
    """The risk stage's own p50/p99 in the phase (bucket upper bounds), when it ran."""
    r = p.get("stage_ms", {}).get("risk")
    if not r or not r.get("n"):
        return ""
    return f"   risk stage p50 <= {r['p50_ms']} p99 <= {r['p99_ms']} ms"


HEADER = (
    f"  {'':<14}{'rps':>8}{'p50':>8}{'p90':>8}{'p99':>8}{'p99.9':>8}{'max':>8}"
    f"{'errors':>7}{'misses':>7}{'gen%':>6}{'other%':>7}"
)


def text(rep: dict[str, Any]) -> str:
    m, s = rep["machine"], rep["settings"]
    phases = rep["phases"]
    lines = [
        f"payswitch-bench {rep['started_at']}  ({rep['wall_s']} s)",
        f"machine: {m['system']}, {m['cpus']} CPUs, Python {m['python']}; load average "
        f"{m['load_average_start'][0]} at start, {m['load_average_end'][0]} at end; other "
        f"processes used {rep['honesty']['other_processes_share_of_machine_pct']}% of the "
        "machine during the phases",
        f"stack: {s['terminals']} terminals, {rep['stack'].get('switches', 1)} switch "
        f"process(es), store {rep['stack'].get('store', '?')}, "
        f"simulated network latency {'on' if s['latency'] else 'off'}, deadline "
        f"{s['deadline_s']} s; latencies in ms; gen% = generator CPU in % of one core, "
        "other% = CPU of processes outside the benchmark in % of the machine",
        "",
        "closed loop, approvals across schemes (N terminals back to back):",
        HEADER,
    ]
    lines += [
        _row(p, f"c={p['concurrency']:g}")
        for p in phases
        if p["target"] == "payswitch" and p["mode"] == "closed"
    ]
    ol = rep["open_loop"]
    lines += ["", "open loop, latency from the scheduled send time:", HEADER]
    open_rows = sorted(
        (p for p in phases if p["mode"] == "open" and p["workload"] == "approvals"),
        key=lambda p: p["offered_rps"],
    )
    for p in open_rows:
        lag = p["send_lag_ms"]["p99"]
        lines.append(_row(p, f"{p['offered_rps']:g}/s") + f"   send lag p99 {_ms(lag)}")
    best = ol["best_rate_rps"]
    lines.append(
        f"  highest offered rate with p99 < {ol['criterion']['p99_below_ms']:g} ms and no deadline "
        f"miss or error: {'none of those tried' if best is None else f'{best:g}/s'}"
    )
    mix = next((p for p in phases if p["workload"] == "mix"), None)
    if mix:
        weights = ", ".join(f"{k} {v}%" for k, v in rep["mix"].get("weights", {}).items())
        lines += [
            "",
            f"mix ({mix['name']}, open loop; {weights}): codes {mix['response_codes']}",
        ]
        for kind, lat in mix.get("latency_ms_by_kind", {}).items():
            lines.append(
                f"  {kind:<10} n={lat['n']:<6} p50 {_ms(lat['p50'])}  p99 {_ms(lat['p99'])}"
                f"  max {_ms(lat['max'])}"
            )
        lines.append(
            f"  retries answered differently from the first: "
            f"{rep['mix'].get('retry_answer_mismatches')}; errors {mix['errors'] or 'none'}"
        )
    lines += overload.summary_lines(rep["overload"] if "per_second" in rep["overload"] else {})
    lines += ["", "switch-added latency (switch log ms - acquirer log ms, per request):"]
    for name, sa in rep["switch_added"].items():
        if sa["joined"]:
            a, w = sa["switch_added_ms"], sa["switch_ms"]
            lines.append(
                f"  {name:<16} n={sa['joined']:<6} added p50 {_ms(a['p50'])} p99 {_ms(a['p99'])}"
                f"  (switch total p50 {_ms(w['p50'])}, network p50 "
                f"{_ms(sa['acquirer_ms']['p50'])})"
            )
    c = rep["ceiling"]
    lines += ["", "ceiling (same generator, same run, closed loop peak):"]
    lines.append(f"  payswitch      {c['payswitch_peak_rps']} rps ({c['payswitch_peak_phase']})")
    lines.append(
        f"  bare echo      {c['echo_peak_rps']} rps ({c['echo_peak_phase']}): payswitch is "
        f"{c['payswitch_pct_of_echo']}% of it"
    )
    lines.append(
        f"  bare 4-hop     {c['chain4_peak_rps']} rps ({c['chain4_peak_phase']}): payswitch is "
        f"{c['payswitch_pct_of_chain4']}% of it"
    )
    for level, v in c["switch_own_added_ms"].items():
        lines.append(
            f"  {level}: switch added p50 {_ms(v['switch_added_p50'])} vs bare forwarder "
            f"{_ms(v['bare_forwarder_added_p50'])} -> switch's own {_ms(v['switch_own_p50'])} ms"
            f" (p99 {_ms(v['switch_added_p99'])} vs {_ms(v['bare_forwarder_added_p99'])})"
        )
    if any(p["target"] != "payswitch" for p in phases):
        lines += ["  ceiling levels:", HEADER]
        lines += [_row(p, p["name"]) for p in phases if p["target"] != "payswitch"]
    lines += _risk_lines(rep["risk_compare"])
    lines += soak.lines(rep["soak"])
    lines += _cpu_lines(rep["cpu_per_auth"], rep["profile"])
    g = rep["ghz"]
    lines += [""]
    if g.get("ran"):
        ours = next((p for p in phases if p["name"] == f"closed c={g['concurrency']}"), None)
        gl = g["latency_ms"]
        lines.append(
            f"ghz (Go) c={g['concurrency']}: {g['rps']} rps  p50 {_ms(gl['p50'])}  p90 "
            f"{_ms(gl['p90'])}  p99 {_ms(gl['p99'])}  max {_ms(gl['max'])}  (ghz CPU "
            f"{g['ghz_core_pct']}% of a core; status {g['status_codes']})"
        )
        if ours:
            ol_ = ours["latency_ms"]
            lines.append(
                f"ours      c={g['concurrency']}: {ours['throughput_rps']} rps  p50 "
                f"{_ms(ol_['p50'])}  p90 {_ms(ol_['p90'])}  p99 {_ms(ol_['p99'])}  max "
                f"{_ms(ol_['max'])}"
            )
    else:
        lines.append(f"ghz: not run ({g.get('reason')})")
    d = rep["deps"]
    if d.get("ran"):
        hsm = d["hsm_via_pool_ops_per_s"]
        st = d["store"]
        lines.append(
            f"dependencies: HSM via pool {hsm.get('tokenize')} tokenize/s, {hsm.get('bare')} "
            f"bare calls/s; SQLite store "
            + ", ".join(
                f"{mode}: {v.get('authorizations/s with 32 concurrent')} auths/s (3 commits)"
                for mode, v in st.items()
            )
        )
    else:
        lines.append(f"dependencies: not measured ({d.get('reason')})")
    h = rep["honesty"]
    lines += [""]
    other = h["other_processes_share_of_machine_pct"]
    if other is not None and other >= OTHER_LOAD_PCT:
        lines.append(
            f"WARNING: processes outside the benchmark used {other}% of the machine during the "
            "phases: these figures are provisional; rerun on an otherwise idle machine"
        )
    if h["generator_busy_phases"]:
        lines.append(
            f"WARNING: the generator used >= {GENERATOR_BUSY_PCT:.0f}% of a core in: "
            + ", ".join(h["generator_busy_phases"])
            + " (figures there may be generator-bound)"
        )
    lines += [f"not covered: {x}" for x in rep["not_covered"]]
    lines += [f"note: {n}" for n in rep["notes"]]
    lines += [f"{k}: {v}" for k, v in rep["files"].items()]
    return "\n".join(lines) + "\n"
