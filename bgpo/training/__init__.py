"""The stages of ``bgpo train``, one module each; :class:`bgpo.trainer.Trainer` runs them in the step loop.

=====================  ==================================================================================
``prompts``            the training prompts in a fixed order per epoch (:class:`PromptStream`)
``rollout``            steps 1–3 of an iteration: decode G responses per prompt at θ_old, grade, advantages
``update``             steps 4–5: the method's ``prepare`` at θ_old, loss chunks → backward, optimiser steps
``evaluation``         periodic evaluation of the eval tasks, ``eval.jsonl`` and the best model
``checkpoint``         atomic checkpoints with a manifest, verification and fall-back on resume, the run folder
``guards``             finite-value checks of rewards, losses and gradient norms (stop or skip)
``runlog``             the append-only logs (``log.jsonl``, ``eval.jsonl``), tolerant of a partial last line
``runtime``            this process's place in a distributed run (what every stage needs from accelerate)
=====================  ==================================================================================
"""
