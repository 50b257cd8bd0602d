"""tfbreak: measure what SGD does to the loss surface along a training run.

Reimplements and extends "The Break-Even Point on Optimization Trajectories of Deep Neural
Networks" (Jastrzebski et al., ICLR 2020).
"""

__version__ = "0.1.0"
