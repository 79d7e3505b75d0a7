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
//   - Space (space.go) is what a planner searches: cem()'s (Δx, Δy, Δz, gripper) inside DROID's 7-D action
//     by default, any components of another width (a LeRobot adapter's own action_encoder) otherwise;
//     StateRule moves the planned states (compute_new_pose for DROID poses, hold or add otherwise);
//   - GD (gradient.go) is a gradient planner, not in the paper: projected Adam on the energy, whose
//     gradient with respect to the actions WorldModel.EnergyGradient takes through the predictor's
//     backward pass (model.EnergyGradient) and the state rule; PlanStep runs CEM, GD or CEM then GD;
//   - poses follow data.ComputeNewPose (scipy's extrinsic xyz Euler angles), and Schedule switches between
//     sub-goals over the planning steps of a task (planning §4).
package plan
