"""One experiment run, from image folders to a complete result folder; knows nothing of schedulers.

device      backend, threads sized to the slots, the GPU found or why not
data        image folders, split, decoded-image cache
augment     the template's transforms: scipy on the CPU, one warp per image on the device
models      keras.applications backbones and the study's head
training    the frozen-feature and fine-tuning paths, with checkpoints (checkpoint)
evaluate    test metrics;  plots: curves, confusion, t-SNE;  runlog: the worker's log
worker      the phases in order: `python -m xrayhpc.worker`
audit, baseline   file facts and the metadata control;  synthetic: demo data;  weights: fetcher
"""
