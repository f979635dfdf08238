"""Off-policy estimates of a candidate allocation from logged assignments and propensities.

IPS (Horvitz–Thompson), SNIPS (self-normalised) and doubly robust (Dudík et al., 2011) for
context-free policies: the candidate gives arm a with probability π(a) to everyone, the log
holds each participant's arm, the propensity it was drawn with, and their reward. The reward
model of DR is each arm's mean logged reward. `obp` implements the same estimators but needs
torch and an older scikit-learn; these are a few lines of numpy.
"""

from __future__ import annotations

import numpy as np


def estimates(arms, propensities, rewards, policy) -> dict:
    arms = np.asarray(arms, dtype=int)
    propensities = np.asarray(propensities, dtype=float)
    rewards = np.asarray(rewards, dtype=float)
    policy = np.asarray(policy, dtype=float)
    if len(arms) == 0:
        return {"ips": None, "snips": None, "dr": None, "n": 0}
    w = policy[arms] / propensities
    q = np.array([rewards[arms == a].mean() if (arms == a).any() else 0.0 for a in range(len(policy))])
    ips = float(np.mean(w * rewards))
    snips = float(np.sum(w * rewards) / np.sum(w)) if np.sum(w) > 0 else None
    dr = float(np.mean(policy @ q + w * (rewards - q[arms])))
    return {"ips": ips, "snips": snips, "dr": dr, "n": int(len(arms))}
