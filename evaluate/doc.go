// Package evaluate measures how well a V-JEPA 2-AC world model predicts held-out robot episodes, so that
// a fine-tune can be compared with the model it started from (spec planning §6: the official repository
// has no validation loop and no rollout-error curve). Clips are encoded once (the encoder is frozen, so
// every predictor compared sees the same representations) and each predictor is scored on them:
//
//   - teacher forcing: the L1 error of each predicted frame given the true frames before it (spec §6.2);
//   - rollout: the L1 error at horizon k = 1..K of the autoregressive rollout from the first frame with
//     the recorded actions and states (spec §6.3);
//   - both next to copying the last observed frame, the error of a model that predicts no change;
//   - action sensitivity: the energy rank of the recorded action among N distractors (actions recorded
//     elsewhere in the held-out set) between adjacent frames, with recall@1 and recall@5: does the model
//     tell the action that was taken from others the robot takes;
//   - inverse dynamics: the action CEM infers between adjacent frames against the recorded one (the
//     paper's camera-sensitivity study, App. §11.4): the error in cm, the direction cosine and the
//     gripper's sign for DROID's 7-D actions, the error per component otherwise.
//
// Every metric runs on the forward-only inference path (plan.WorldModel: Score, ScoreEach, many clips
// per rollout). Training's validation keeps its own loss graph (it must report the training objective
// itself, on the training pass); this package is the model-level evaluation of vjepa-vk eval.
package evaluate
