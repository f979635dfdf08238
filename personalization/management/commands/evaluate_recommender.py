"""`evaluate_recommender --format movielens --path DIR [--seeds 42,1,2,3,4] [--k 10] [--budget N] [--save]`.

Prints one JSON document. Runs personalization.recommender.evaluation entirely in memory (no
database): per seed, every model but popularity (tessera, ALS, EASE, RP3beta) is tuned by the
same search with the same budget on a validation split of the training data; tessera is fitted
and served exactly as production does; then the ablation. `--save` also stores the
document for the operator dashboard (that needs the migrated database).
"""

from __future__ import annotations

import json

from django.core.management.base import CommandError
from django.db import DatabaseError
from threadpoolctl import threadpool_limits

from cdp.importers.common import ImportFormatError
from cdp.management.base import TesseraCommand
from personalization.recommender.evaluation import STEPS_PER_SEED, EvaluationError, evaluate_movielens
from personalization.recommender.search import SEARCH_BUDGET
from personalization.services.evaluations import recommender_evaluation_save


class Command(TesseraCommand):
    help = "Offline evaluation of the hybrid recommender against tuned popularity, ALS, EASE and RP3beta."
    requires_system_checks: list = []
    requires_migrations_checks = False

    def add_arguments(self, parser):
        parser.add_argument("--format", required=True, choices=["movielens"])
        parser.add_argument("--path", required=True, help="u.data+u.item, or ratings.csv+movies.csv.")
        parser.add_argument("--seeds", default="42,1,2,3,4", help="Comma-separated seeds (default 42,1,2,3,4).")
        parser.add_argument("--k", type=int, default=10, help="List length (default 10).")
        parser.add_argument("--budget", type=int, default=SEARCH_BUDGET,
                            help=f"Configurations each tuned model may try (default {SEARCH_BUDGET}).")
        parser.add_argument("--save", action="store_true",
                            help="Also store the result for the operator dashboard (/ops/).")

    def handle(self, *args, path: str, seeds: str, k: int, budget: int, save: bool, **options):
        try:
            seed_list = [int(s) for s in seeds.split(",") if s.strip()]
        except ValueError:
            raise CommandError("--seeds must be comma-separated whole numbers, such as 42,1,2.") from None
        if not seed_list:
            raise CommandError("--seeds needs at least one seed.")
        if len(set(seed_list)) != len(seed_list):
            raise CommandError("--seeds must not repeat a seed.")
        if k < 1:
            raise CommandError("--k must be a positive whole number.")
        if budget < 1:
            raise CommandError("--budget must be a positive whole number.")
        try:
            with self.progress(total=len(seed_list) * STEPS_PER_SEED, unit="step", desc="Evaluating") as bar:
                steps = []

                def on_step(description: str) -> None:
                    if steps:
                        bar.update(1)
                    steps.append(description)
                    bar.set_description(description)

                # One BLAS thread: implicit's ALS requires it, and on a shared machine a
                # threaded BLAS under contention is slower, not faster.
                with threadpool_limits(limits=1, user_api="blas"):
                    result = evaluate_movielens(path, seeds=seed_list, k=k, budget=budget, progress=on_step)
                bar.update(1)
        except (ImportFormatError, EvaluationError, OSError) as error:
            raise CommandError(str(error)) from None
        except MemoryError as error:
            raise CommandError(str(error) or "Not enough memory for this evaluation.") from None
        if save:
            try:
                recommender_evaluation_save(result)
            except DatabaseError:
                raise CommandError("The result could not be stored: is the database set up (manage.py migrate)? "
                                   "Run without --save to only print it.") from None
        self.stdout.write(json.dumps(result))
