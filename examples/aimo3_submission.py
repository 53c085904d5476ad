"""AIMO3 submission with tirmath, as a plain script (the same steps as aimo3_submission.ipynb).

On Kaggle: attach the offline bundle (`tirmath bundle --out DIR --gpu`, uploaded as a dataset) and
your model as datasets, set TIRMATH_MODEL to the model's folder, turn the internet off, submit.
Locally, rehearse it with `tirmath kaggle-local --csv reference.csv --notebook examples/aimo3_submission.py`
or run it directly: without `kaggle_evaluation` it uses tirmath's local gateway (same interface).

Settings come from the environment so the same file runs everywhere:
  TIRMATH_MODEL        model folder or hub id (default: the built-in SmolLM2, which cannot do olympiad maths)
  TIRMATH_TEST_CSV     the test CSV (default: the competition's test.csv)
  TIRMATH_TIME_BUDGET  seconds for the whole run (default: 9 hours less 15 minutes)
  TIRMATH_SAMPLES, TIRMATH_MAX_TOKENS, TIRMATH_TIR_RATIO, TIRMATH_RUN_DIR
"""

import os
import subprocess
import sys

COMPETITION_DIR = "/kaggle/input/ai-mathematical-olympiad-progress-prize-3"
BUNDLE_DIR = os.environ.get("TIRMATH_BUNDLE", "/kaggle/input/tirmath-bundle")


def install_offline() -> None:
    """Install tirmath and its wheels from the attached bundle (no internet on Kaggle)."""
    if os.path.isfile(os.path.join(BUNDLE_DIR, "install.sh")):
        subprocess.run(["bash", os.path.join(BUNDLE_DIR, "install.sh")], check=True)


def make() -> object:
    from agent.rollout import RolloutConfig
    from agent.solve import SolveConfig
    from evals.kaggle import KaggleConfig, make_predict

    env = os.environ.get
    config = SolveConfig(
        samples=int(env("TIRMATH_SAMPLES", "8")),
        tir_ratio=float(env("TIRMATH_TIR_RATIO", "0.5")),
        rollout=RolloutConfig(max_tokens=int(env("TIRMATH_MAX_TOKENS", "16384"))),
        policy="consistency:4/5",
    )
    kaggle = KaggleConfig(competition="aimo3", time_budget=float(env("TIRMATH_TIME_BUDGET", str(9 * 3600 - 900))),
                          run_dir=env("TIRMATH_RUN_DIR", "tirmath_run"))
    # The engine starts in the background now; the first predict call waits for it.
    return make_predict(kaggle, config=config, model=env("TIRMATH_MODEL") or None)


def serve(predict: object) -> None:
    sys.path.append(COMPETITION_DIR)
    try:
        import kaggle_evaluation.aimo_3_inference_server as kes  # on Kaggle
    except ImportError:  # elsewhere: tirmath's local gateway, the same interface
        import evals.kaggle_local as kes
    server = kes.AIMO3InferenceServer(predict)
    if os.getenv("KAGGLE_IS_COMPETITION_RERUN"):
        server.serve()
    else:
        server.run_local_gateway((os.environ.get("TIRMATH_TEST_CSV", f"{COMPETITION_DIR}/test.csv"),))


def main() -> None:
    install_offline()
    predict = make()
    try:
        serve(predict)
    finally:
        predict.close()  # type: ignore[attr-defined]


if __name__ == "__main__":  # vLLM's engine process re-imports this file: keep the work under main()
    main()
