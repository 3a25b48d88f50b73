package testenv

import (
	"fmt"
	"strings"
)

// PartnerNDRBody is the MIME body (multipart/report, parts separated by
// boundary) of mx.partner.example's DSN about message seq that origFrom
// sent to nobody@partner.example: its Message-ID is <orig-seq@domain>.
// The bench's and the soak's bounce storms send it.
func PartnerNDRBody(boundary, origFrom string, seq int, domain string) string {
	return "This is a MIME-encapsulated message.\r\n\r\n--" + boundary + "\r\n" +
		"Content-Type: text/plain; charset=us-ascii\r\n\r\n" +
		"I'm sorry to have to inform you that your message could not\r\nbe delivered to one or more recipients.\r\n\r\n" +
		"<nobody@partner.example>: 550 5.1.1 User unknown\r\n\r\n--" + boundary + "\r\n" +
		"Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.partner.example\r\n\r\n" +
		"Final-Recipient: rfc822; nobody@partner.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--" + boundary + "\r\n" +
		"Content-Type: text/rfc822-headers\r\n\r\n" +
		"From: " + origFrom + "\r\nTo: nobody@partner.example\r\nSubject: hello\r\n" +
		fmt.Sprintf("Message-ID: <orig-%d@%s>\r\n", seq, domain) + "\r\n--" + boundary + "--\r\n"
}

// BodyLimitPolicy is a policy with body_limit = 1 MiB and one rule that
// tags every inbound bounce: with it, an NDR whose report begins late in
// the body (LateReportNDR) must still be recognized, by the engine and by
// the milter that gathers the body.
const BodyLimitPolicy = `local_domains = ["corp.example"]
body_limit = 1048576
[[rule]]
name = "bounces"
kinds = ["bounce"]
direction = "inbound"
key = "recipient"
limit = 0
action = "tag"
`

// LateReportFiller is the ordinary text LateReportNDR begins with: some
// 300 KiB, past the classifier's default body limit of 256 KiB.
func LateReportFiller() string {
	return strings.Repeat("A line of a long ordinary text that goes on and on and on.\r\n", (300<<10)/60)
}

// LateReportNDR is the body of an NDR (to list@corp.example, about
// x@outside.example) whose report text begins after LateReportFiller.
func LateReportNDR() string {
	return LateReportFiller() +
		"\r\nThis is the mail system at host mx.outside.example.\r\n\r\n" +
		"I'm sorry to have to inform you that your message could not\r\nbe delivered to one or more recipients.\r\n\r\n" +
		"<x@outside.example>: host mx said: 550 5.1.1 User unknown\r\n\r\n" +
		"Final-Recipient: rfc822; x@outside.example\r\nAction: failed\r\nStatus: 5.1.1\r\n"
}
