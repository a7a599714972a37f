import torch

# The test networks are tiny: one intra-op thread is faster than two threads
# that spin against each other (and against the second pytest-xdist or joblib
# worker) on the 2-core CI machine.
torch.set_num_threads(1)
