"""train/throughput.py: the FLOP counter of the first step never outlives a run that raised."""
from torch.nn.modules import module as torch_module

from hybridssl.train.throughput import StepThroughput


def _global_hooks() -> int:
    return len(torch_module._global_forward_pre_hooks) + len(torch_module._global_forward_hooks)


def test_a_step_that_raises_leaves_no_global_module_hooks():
    before = _global_hooks()
    callback = StepThroughput()
    callback.on_train_batch_start(None, None, None, 0)  # the first step: the FLOP counter starts
    assert _global_hooks() > before  # what a leak would leave behind
    callback.on_exception(None, None, RuntimeError("loss is NaN at step 1"))
    assert _global_hooks() == before and callback._counter is None
