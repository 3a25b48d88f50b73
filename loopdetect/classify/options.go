package classify

// Options tune the classifier. The zero value is usable.
type Options struct {
	// MaxHops is the Received count from which a loop sign is raised.
	// Zero means 25, a little under Postfix's hopcount_limit of 50 so the
	// sign shows before the MTA gives up (RFC 5321 6.3).
	MaxHops int
	// BodyLimit is how many bytes of Message.Body are inspected, and bounds
	// the decoded text read from them. Zero means DefaultBodyLimit.
	BodyLimit int
	// MaxDepth bounds the nesting of multiparts and attached messages that
	// is followed (RFC 2046 5.1, 5.2.1). Zero means DefaultMaxDepth.
	MaxDepth int
	// LocalDomains are the domains whose mailboxes this site hosts, as the
	// policy's local_domains give them: an entry with a leading dot also
	// holds the domains below it. With them the classifier can tell a
	// report that a local mailbox sends on (its envelope sender is that
	// mailbox) or that leaves the site again after it was delivered (an
	// envelope recipient outside them) from one arriving for a local
	// user. Empty means unknown: those two tests are skipped, and only
	// what the message itself shows is used.
	LocalDomains []string
}

func (o Options) maxHops() int {
	if o.MaxHops > 0 {
		return o.MaxHops
	}
	return 25
}

func (o Options) bodyLimit() int {
	if o.BodyLimit > 0 {
		return o.BodyLimit
	}
	return DefaultBodyLimit
}

func (o Options) maxDepth() int {
	if o.MaxDepth > 0 {
		return o.MaxDepth
	}
	return DefaultMaxDepth
}

// DefaultBodyLimit is how much of a body is inspected when nothing else is
// configured. NDRs put their diagnostic and the returned headers near the top;
// 256 KiB holds them and the quoted original of every sample in the corpora.
const DefaultBodyLimit = 256 << 10
