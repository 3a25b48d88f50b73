// Package loopdetect holds the three parts that decide what happens to a
// message, each in its own package, so that the import graph reads top-down
// (milter → engine → {classify, policy, state}):
//
//   - [github.com/loopbreaker/loopbreaker/loopdetect/classify], the classifier:
//     what a message is (bounce, forwarded NDR, auto-reply, ordinary) and the
//     evidence. Pure code: no I/O, no clock, no state.
//   - [github.com/loopbreaker/loopbreaker/loopdetect/policy], the policy: the
//     TOML rules, which rule matches a classified message and under which
//     counting keys. Pure code too; it reads the classifier's vocabulary.
//   - [github.com/loopbreaker/loopbreaker/loopdetect/engine], the engine: the
//     one place where the action for a message is decided. It classifies,
//     matches, counts through the state backend and settles the final action
//     with every fallback known before the reply.
//
// This package has no code of its own. docs/design.md draws the whole path.
package loopdetect
