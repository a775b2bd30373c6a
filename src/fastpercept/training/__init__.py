"""Training and measuring models (needs ``fastpercept[train]``): the loop, the tasks, the losses,
the loss network, data, the optimization baseline and the evaluations."""
