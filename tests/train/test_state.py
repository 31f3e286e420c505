from raymm.train.state import TrainState


def _run(scores, patience, min_epochs=0):
    state = TrainState()
    for epoch, score in enumerate(scores):
        state.observe(epoch, score, patience, min_epochs)
        if state.stopped_early:
            return epoch + 1, state.best_epoch
    return len(scores), state.best_epoch


def test_early_stop_after_patience_counting_only_epochs_after_min_epochs():
    scores = [0.1, 0.2, 0.15, 0.14, 0.13, 0.3, 0.12, 0.11, 0.1, 0.1]
    assert _run(scores, patience=3) == (5, 1)  # three evaluations without a new best
    assert _run(scores, patience=3, min_epochs=4) == (9, 5)  # epochs 3-4 did not count: it found epoch 6
    assert _run([0.3, 0.2, 0.1, 0.1, 0.1, 0.1], patience=2, min_epochs=3) == (5, 0)  # 2 bad epochs after the 3rd


def test_stage_efficiency_reports_steady_epoch_time_and_peak_worker_memory():
    from raymm.train.stages import StageResult, flat_report

    state = TrainState()
    state.history = [{"epoch_seconds": 9.0, "worker_peak_rss_mb": 800.0}, {"epoch_seconds": 2.0, "worker_peak_rss_mb": 950.0},
                     {"epoch_seconds": 4.0, "worker_peak_rss_mb": 900.0}]
    r = StageResult("tune", state, {}, "ckpt")
    assert r.seconds_per_epoch == 3.0  # the median after the first epoch
    assert r.peak_rss_mb == 950.0
    assert StageResult("tune", TrainState(), {}, "ckpt").peak_rss_mb is None
    report = {"model": {"parameters": 1, "seconds_per_epoch": 3.0, "eval_seconds": float("nan"), "peak_rss_mb": 950.0,
                        "latency": None}}
    assert flat_report(report) == {"model_parameters": 1, "model_seconds_per_epoch": 3.0,
                                   "model_worker_peak_rss_mb": 950.0}
