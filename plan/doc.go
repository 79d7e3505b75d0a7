// Package plan chooses robot actions with a V-JEPA 2-AC world model, as the official planner does
// (spec planning.md): the cross-entropy method over candidate action sequences whose energy is the L1
// distance between the predicted and the goal representation, executed one action at a time (receding
// horizon).
//
// The pieces are separable so that other planners and evaluations build on them:
//   - CEM (cem.go) is the official cem() as a function over an Energy callback and a Noise source: any
//     model that scores action sequences can be planned with, and a recorded noise replays a search;
//   - WorldModel (worldmodel.go) is a loaded encoder and predictor on a Vulkan device: Encode turns an
//     image into a representation (spec planning §2), Score rolls candidate action sequences forward and
//     returns their energies at every step (model.Rollout), and Energy binds both into a CEM callback;
//   - poses follow data.ComputeNewPose (scipy's extrinsic xyz Euler angles), and Schedule switches between
//     sub-goals over the planning steps of a task (planning §4).
package plan
