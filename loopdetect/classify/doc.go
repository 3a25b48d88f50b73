// Package classify is the pure classifier: it says what one mail message is
// (a bounce, a forwarded non-delivery report, an auto-reply or ordinary
// mail) and why.
//
// It is pure code: no I/O, no clock, no state. Nothing is read from disk or
// the network, no time is looked at, and no global mutable state is kept
// (the phrase tables and automata are built once at initialization and only
// read), so one message always gets the same answer. The milter layer and
// the classify command build a [Message] (or read one with [ReadMessage] or
// [ReadStoredMessage], from a reader they give) and call [Classify]; the
// engine package, the decision core, counts and acts on the returned
// [Verdict].
//
// What it returns: a [Verdict] holding the primary [Kind]; the DSN action
// of a bounce (failed, delayed or delivered, RFC 3464 2.3.3); every piece of
// evidence that fired as a [Signal] named by one of the Signal* constants;
// the loop signs, independent of the kind; the Received count and forward
// depth; and, for reports, the Message-ID of the message the report is
// about and the recipient that failed.
//
// What it knows:
//
//   - Delivery status notifications (RFC 3464, RFC 6522 multipart/report,
//     RFC 6533 for internationalized ones) and the non-standard reports of
//     Postfix, Exim, Sendmail, qmail, Exchange 5.5 to Office 365, Gmail,
//     Yahoo, Lotus Domino, GroupWise, Courier, MDaemon, Amazon SES and
//     others: envelope and header signs (null reverse-path, RFC 5321 4.5.5;
//     daemon senders; report subjects in many languages; vendor fields such
//     as X-Failed-Recipients and X-MS-Exchange-Message-Is-Ndr) weighed with
//     what the report's own text says (MTA wording, RFC 3464 2.2/2.3 fields,
//     RFC 3463 status codes). Failure, delay and success notices are told
//     apart (RFC 3464 2.3.3).
//   - Reports forwarded onward by a person or a mailbox rule: a forward
//     prefix in many languages before a report subject, or the report
//     itself inside the message, attached (RFC 2046 5.2.1 message/rfc822)
//     or inline below a mail client's forward separator and header block,
//     and Exchange's inbox-rule fields. A reply about a report ("Re:") is
//     not one. A report a mailbox passed on unchanged (a redirect or
//     resend) is one too: told by its envelope (SRS, BATV, Gmail's
//     +caf_= forwarding, a local mailbox as reverse-path given
//     Options.LocalDomains) or by the fields the redirect added
//     (Resent-*, X-Forwarded-To, Delivered-To of the sender, or of a local
//     mailbox when it leaves the site again).
//   - Auto-replies (RFC 3834): Auto-Submitted: auto-replied, Precedence:
//     auto_reply, the vendors' X-Autoreply-style fields, responders'
//     subjects in many languages. Auto-Submitted: auto-generated marks a
//     notification, not a reply (RFC 3834 5).
//   - Loop signs: Received count (RFC 5321 6.3), X-Loop or Delivered-To
//     naming a recipient, deep forward chains, a report about a report.
//
// The body is inspected in one pass and within bounds: at most
// Options.BodyLimit bytes, MIME nesting (RFC 2045, RFC 2046) followed to
// Options.MaxDepth, a fixed number of parts and attached messages. Broken
// MIME is read as text. Nothing in it panics on any input (see the fuzz
// tests).
//
// README.md lists every signal, its weight, where it comes from and the
// false positive it guards against.
package classify
