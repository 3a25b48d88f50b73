package testenv

import "fmt"

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
