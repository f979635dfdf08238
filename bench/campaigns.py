"""Campaign statistics and services: simulations through the real statistics functions
(vectorised over thousands of experiments), a representative campaign through the real
services on PostgreSQL, and the assignment endpoint's latency under a fixed offered load.

    python bench/campaigns.py                      # everything (PostgreSQL at BENCH_PG_URL)
    python bench/campaigns.py --only simulate      # statistics only, no database
    python bench/campaigns.py --only services --only http

Prints figures; the reference each is read against is printed beside it (nominal 5% error,
95% coverage, oracle regret 0, the endpoint's 10 ms p95 target).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from campaigns.stats import sequential  # noqa: E402
from campaigns.stats.arms import cuped_adjust, thompson_weights  # noqa: E402

# --- simulations (no database) ------------------------------------------------------------------------


def peeked(experiments: int, days: int, per_day: int, p_control: float, lift: float, rng) -> dict:
    """Two-arm conversion experiments, looked at after every day: how often the always-valid
    interval (and, for comparison, the fixed-horizon z interval) excludes 0 at some look, and
    how often it holds the true lift at every look and on the last day."""
    p = np.array([p_control, p_control * (1 + lift)])
    conv = rng.binomial(per_day, p[:, None, None], size=(2, experiments, days)).cumsum(axis=2)
    n = per_day * np.arange(1, days + 1)
    mean = conv / n
    out = {}
    for name, seq in (("always_valid", True), ("z_fixed_horizon", False)):
        _, low, high = sequential.relative_lift(mean[1], mean[1] * (1 - mean[1]), n, mean[0],
                                                mean[0] * (1 - mean[0]), n, sequential=seq)
        excludes_zero = (low > 0) | (high < 0)
        holds_truth = (low <= lift) & (lift <= high)
        out[name] = {"rejects_at_some_look": float(np.mean(excludes_zero.any(axis=1))),
                     "covers_at_every_look": float(np.mean(holds_truth.all(axis=1))),
                     "covers_on_last_day": float(np.mean(holds_truth[:, -1])),
                     "median_final_halfwidth": float(np.nanmedian((high - low)[:, -1] / 2))}
    return out


def bandit_regret(runs: int, days: int, per_day: int, rates: list[float], rng) -> dict:
    """Conversions lost against always showing the best arm: Thompson sampling (1% floor,
    100-participant warm-up, recomputed daily as beat does), uniform allocation, and a fixed
    A/B/n test for half the horizon that then ships its observed winner."""
    rates = np.asarray(rates)
    k, best = len(rates), rates.max()
    regret = {"oracle": [], "uniform": [], "fixed_ab_then_ship": [], "thompson": []}
    picked_best = {"fixed_ab_then_ship": 0, "thompson": 0}
    for _ in range(runs):
        for policy in ("uniform", "fixed_ab_then_ship", "thompson"):
            weights = np.full(k, 1.0 / k)
            n, s, lost = np.zeros(k), np.zeros(k), 0.0
            for day in range(days):
                counts = rng.multinomial(per_day, weights)
                s += rng.binomial(counts, rates)
                n += counts
                lost += float(counts @ (best - rates))
                if policy == "thompson":
                    new = thompson_weights(s, n, minimum=0.01, warmup=100, draws=1000, rng=rng)
                    weights = weights if new is None else new
                elif policy == "fixed_ab_then_ship" and day + 1 == days // 2:
                    weights = np.eye(k)[np.argmax(s / np.maximum(n, 1))]
            regret[policy].append(lost)
            if policy in picked_best:
                picked_best[policy] += int(np.argmax(weights) == np.argmax(rates))
        regret["oracle"].append(0.0)
    return {"rates": rates.tolist(), "people": days * per_day, "runs": runs,
            "mean_regret_conversions": {name: float(np.mean(v)) for name, v in regret.items()},
            "share_ending_on_best_arm": {name: v / runs for name, v in picked_best.items()}}


def cuped_simulation(people: int, rng) -> dict:
    """Revenue with a pre-period covariate (the same customers' spend before the campaign)."""
    pre = rng.gamma(2.0, 20.0, people)
    y = 0.6 * pre + rng.gamma(1.5, 10.0, people)
    _, theta, reduction = cuped_adjust(y, pre)
    return {"people": people, "theta": theta, "variance_reduction": reduction,
            "interval_width_ratio": float(np.sqrt(1 - reduction))}


def simulate_main(args) -> None:
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    aa = peeked(args.experiments, args.days, args.per_day, 0.10, 0.0, rng)
    ab = peeked(args.experiments, args.days, args.per_day, 0.10, 0.10, rng)
    print(f"\nA/A, {args.experiments:,} experiments × {args.days} daily looks, {args.per_day} people a day an arm, "
          f"10% conversion (reference: ≤ 5% false positives)")
    for name, row in aa.items():
        print(f"  {name:>16}: false-positive rate {row['rejects_at_some_look']:.2%}")
    print("true 10% relative lift (10% → 11%), same design (reference: ≥ 95% coverage)")
    for name, row in ab.items():
        print(f"  {name:>16}: covers at every look {row['covers_at_every_look']:.2%}, on the last day "
              f"{row['covers_on_last_day']:.2%}, detects the lift {row['rejects_at_some_look']:.2%}, final "
              f"half-width ±{row['median_final_halfwidth']:.3f}")
    bandit = bandit_regret(args.bandit_runs, args.days, 3 * args.per_day, [0.10, 0.11, 0.12], rng)
    print(f"bandit regret: arms converting {bandit['rates']}, {bandit['people']:,} people, {bandit['runs']} runs "
          f"(conversions lost against the oracle, which loses 0)")
    for name, value in bandit["mean_regret_conversions"].items():
        print(f"  {name:>18}: {value:8.1f}")
    for name, value in bandit["share_ending_on_best_arm"].items():
        print(f"  {name:>18} ends on the best arm in {value:.0%} of runs")
    cuped = cuped_simulation(20_000, rng)
    print(f"CUPED on simulated revenue with a pre-period covariate: variance −{cuped['variance_reduction']:.1%}, "
          f"intervals ×{cuped['interval_width_ratio']:.2f}")
    print(f"  (simulations took {time.perf_counter() - started:.1f} s)")
    print(json.dumps({"aa": aa, "lift_10pct": ab, "bandit": bandit, "cuped": cuped}))


# --- through the services -----------------------------------------------------------------------------


def services_main(args) -> list:
    """A representative campaign through the real services on PostgreSQL: people, consent,
    pre-period purchases, assignment, outcome events, daily bandit recomputes, the exact
    analysis (CUPED from real pre-period events) and the DP release."""
    from setup_django import fresh_postgres

    fresh_postgres("tessera_bench_campaigns")
    from django.utils import timezone
    from pipeline import grant

    from campaigns.services.allocation import campaign_weights_recompute
    from campaigns.services.assignment import assignments_get
    from campaigns.services.campaigns import campaign_create
    from campaigns.services.results import campaign_analysis, campaign_results, campaign_results_release
    from cdp.services.events import events_ingest
    from cdp.services.resolution import profiles_ingest
    from cdp.services.sources import source_create

    rng = np.random.default_rng(args.seed)
    shop, _ = source_create(key="shop", name="Shop", kind="first_party", trust=50)
    ids = []
    for start in range(0, args.people, 1000):
        ids += [r.profile_id for r in profiles_ingest(source=shop, records=[
            {"external_id": f"p{i}", "identifiers": {"email": f"p{i}@example.com"}}
            for i in range(start, min(args.people, start + 1000))])]
    grant(ids, rates={"marketing": 0.9}, seed=args.seed)
    # Pre-period spend: what CUPED adjusts with. Heavier spenders before spend more during.
    propensity = rng.gamma(1.0, 1.0, len(ids))
    before = timezone.now() - timedelta(days=10)
    events_ingest(source=shop, events=[
        {"profile_id": str(pid), "type": "purchase", "item_id": "sku", "price": f"{20 * w:.2f}", "quantity": 1,
         "occurred_at": before.isoformat()} for pid, w in zip(ids, propensity, strict=True) if rng.random() < 0.5])
    weight_of = {str(pid): w for pid, w in zip(ids, propensity, strict=True)}
    figures = {}
    for key, allocation, rates in (("aa", "fixed", [0.10, 0.10]), ("lift", "fixed", [0.10, 0.11]),
                                   ("bandit", "bandit", [0.10, 0.11, 0.13])):
        campaign = campaign_create(key=key, name=key, actor="bench", allocation=allocation,
                                   metric={"event": "purchase", "kind": "revenue"},
                                   variants=[{"key": f"v{i}"} for i in range(len(rates))])
        days = 10
        per_day = len(ids) // days
        for day in range(days):
            batch = [str(p) for p in ids[day * per_day:(day + 1) * per_day]]
            answers = assignments_get(campaign=campaign, profile_ids=batch, accessor=None)
            keys = [v["key"] for v in campaign.variants]
            events = []
            for pid, answer in answers.items():
                if answer["in_experiment"]:
                    arm = keys.index(answer["variant"])
                    if rng.random() < rates[arm] * min(3.0, weight_of[str(pid)]):
                        events.append({"profile_id": str(pid), "type": "purchase", "item_id": "sku",
                                       "price": f"{25 * weight_of[str(pid)]:.2f}", "quantity": 1,
                                       "message_id": f"{key}:{pid}"})
            events_ingest(source=shop, events=events)
            if allocation == "bandit":
                campaign_weights_recompute(campaign_id=campaign.id)
                campaign.refresh_from_db()
        analysis = campaign_analysis(campaign=campaign)
        release = campaign_results_release(campaign_id=campaign.id)
        public = campaign_results(campaign=campaign)
        figures[key] = {"analysis": analysis, "released_epsilon": sum(r.epsilon for r in release),
                        "public_arms": public["arms"], "srm_p_value": public["srm_p_value"],
                        "final_weights": campaign.weights}
        arms = analysis["arms"]
        print(f"\nservices, campaign {key} ({allocation}, true conversion {rates}, revenue metric): "
              f"{analysis['participants']:,} participants of {len(ids):,} (90% allow marketing)")
        for arm in arms:
            print(f"  {arm['variant']}: n {arm['participants']:>5}, lift {arm['lift']}, with CUPED "
                  f"{arm['lift_cuped']}, P(best) {arm['probability_best']}")
        reduction = analysis["cuped"]["variance_reduction"]
        reduction = analysis["cuped"]["variance_reduction"]
        print(f"  CUPED variance reduction from real pre-period purchases: {reduction:.1%}")
        print(f"  exact SRM p {analysis['srm_p_value']}; released (ε {figures[key]['released_epsilon']}) SRM p "
              f"{public['srm_p_value']}; final allocation {[round(w, 3) for w in campaign.weights]}")
        dr = {name: round(v["dr"], 3) for name, v in analysis["off_policy"].items() if v["dr"] is not None}
        print(f"  off-policy value (DR) per person of candidate allocations: {dr}")
    print(json.dumps(figures, default=str))
    return ids


# --- the endpoint under load --------------------------------------------------------------------------


def http_main(args, ids: list) -> None:
    from ingest import CpuMeter
    from pipeline import HTTP_PORT, _offered, _print_row, _wait_http
    from setup_django import production_env

    from cdp.api.services.api_keys import api_key_create

    _, key = api_key_create(name="bench", scopes=["campaigns:read"])
    keys = json.loads((Path(os.environ["TESSERA_VAR_DIR"]) / "dev-keys.json").read_text())
    env = {**os.environ, **production_env(keys), "TESSERA_API_RATE": "1000000/s", "LOG_LEVEL": "WARNING"}
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "cdp.wsgi:application", "--bind", f"127.0.0.1:{HTTP_PORT}",
         "--workers", str(args.workers), "--log-level", "warning", "--access-logfile", "/dev/null"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_http()
        # The fixed campaigns' people are assigned already (sticky reads); "fresh" draws new ones.
        from campaigns.models import Campaign
        from campaigns.services.campaigns import campaign_create

        Campaign.objects.filter(key="fresh").delete()  # first draws again on every run
        campaign_create(key="fresh", name="fresh", actor="bench", metric={"event": "purchase"},
                        variants=[{"key": "a"}, {"key": "b"}])
        for campaign in ("lift", "fresh"):
            paths = [f"/api/v1/profiles/{pid}/campaigns/{campaign}" for pid in ids]
            _offered(paths[:200], key, rate=20, seconds=2)  # warm-up
            kind = "sticky reads" if campaign == "lift" else "first draws"
            print(f"\nGET /api/v1/profiles/{{id}}/campaigns/{campaign} ({kind}), "
                  f"gunicorn {args.workers} sync workers, load average {os.getloadavg()[0]:.1f} (target p95 < 10 ms)")
            print(f"  {'offered/s':>9}{'achieved/s':>11}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}{'errors':>8}")
            with CpuMeter(server.pid) as cpu:
                result = _offered(paths[200:], key, rate=args.rate, seconds=args.http_seconds)
            _print_row(result)
            print(f"  CPU per request: gunicorn {cpu.used['workers'] / result['total'] * 1000:.2f} ms, "
                  f"PostgreSQL {cpu.used['backends'] / result['total'] * 1000:.2f} ms")
    finally:
        server.terminate()
        server.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", choices=["simulate", "services", "http"])
    parser.add_argument("--experiments", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--per-day", type=int, default=200, help="people a day in each arm")
    parser.add_argument("--bandit-runs", type=int, default=200)
    parser.add_argument("--people", type=int, default=3000, help="profiles for the services part")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--http-seconds", type=int, default=30)
    parser.add_argument("--rate", type=int, default=100, help="offered requests a second (default 100)")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    parts = args.only or ["simulate", "services", "http"]
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    if "simulate" in parts:
        simulate_main(args)
    if "services" in parts:
        ids = services_main(args)
    elif "http" in parts:
        ids = _existing_people()
    if "http" in parts:
        http_main(args, ids)


def _existing_people() -> list:
    """`--only http` after an earlier services run: the same database, not rebuilt."""
    server = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")
    os.environ["DATABASE_URL"] = f"{server}/tessera_bench_campaigns{os.environ.get('BENCH_DB_SUFFIX', '')}"
    os.environ.pop("CELERY_BROKER_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")
    import django

    django.setup()
    from campaigns.models import Assignment

    ids = [str(p) for p in Assignment.objects.filter(campaign__key="lift").values_list("profile_id", flat=True)]
    if not ids:
        raise SystemExit("Run the services part first: python bench/campaigns.py --only services")
    return ids


if __name__ == "__main__":
    main()
