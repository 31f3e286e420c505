from raymm.train.state import TrainState


def _run(scores, patience, min_epochs=0):
    state = TrainState()
    for epoch, score in enumerate(scores):
        state.observe(epoch, score, patience, min_epochs)
        if state.stopped_early:
            return epoch + 1, state.best_epoch
    return len(scores), state.best_epoch


def test_early_stop_after_patience_but_never_before_min_epochs():
    scores = [0.1, 0.2, 0.15, 0.14, 0.13, 0.3, 0.12, 0.11]
    assert _run(scores, patience=3) == (5, 1)  # three evaluations without a new best
    assert _run(scores, patience=3, min_epochs=4) == (5, 1)  # already past epoch 4
    assert _run(scores, patience=3, min_epochs=6) == (8, 5)  # kept going through the dip, found a better epoch
    assert _run([0.3, 0.2, 0.1, 0.1], patience=1, min_epochs=3) == (3, 0)  # stops at the first chance after
