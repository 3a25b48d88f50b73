package classify

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"hash/fnv"
	"mime/quotedprintable"
	"os"
	"strings"
	"testing"
)

// A second, independent generator of forwarded, redirected and resent
// reports (issue 14). It shares nothing with fwdgen_test.go: it does not
// start from the corpus's bounces but writes its own reports of a dozen
// MTAs and services (some with very little wording: qmail's short notice,
// a Japanese carrier's, a French ISP's "non remis", Courier's delay
// warning, an Exim filter failure without a Subject), and passes them on
// the ways people and mailbox rules do:
//
//   - inline by 16 clients and styles (Outlook desktop, HTML and on the
//     web, Outlook mobile, Gmail, Apple Mail, Thunderbird plain and HTML,
//     Zimbra, Lotus Notes, Roundcube, K-9, SOGo, Samsung Email, Mutt with
//     quoting, a forward written as a quoting reply), in plain text or
//     HTML, in 30 languages, with the subject kept, emptied or rewritten;
//   - as an attachment (message/rfc822 or an .eml file);
//   - unchanged by a redirect or resend, each with its envelope: SRS0, SRS1,
//     BATV, Gmail's +caf_=, a local mailbox (Options.LocalDomains),
//     Thunderbird's Resent-*, procmail's "!", Exchange's redirect rule,
//     Sieve redirect and .forward keeping the null sender.
//
// Hard negatives are made the same ways from ordinary mail.
//
// A fixed fifth of the cases, chosen by a hash of the case name, is held
// out: tune on the "tune" figures only; the held-out recall is reported
// separately and the test fails only when it falls under a floor.

const wgOrigSubject = "Quarterly figures"

type wgNDR struct {
	family  string
	weak    bool   // little wording: caught in its original form by the null sender
	from    string // From field value
	subject string // "" for none
	extra   string // further header fields, each ending in "\n"
	ctype   string // Content-Type of the report
	cte     string
	body    string // the report's body
	text    string // what a client shows of it when forwarding inline
	html    string // the same as HTML, for clients that forward in HTML
	date    string
	msgID   string
	action  string
}

func (n *wgNDR) header() string {
	var b strings.Builder
	b.WriteString("From: " + n.from + "\n")
	b.WriteString("To: alice@corp.example\n")
	if n.subject != "" {
		b.WriteString("Subject: " + encWord(n.subject) + "\n")
	}
	b.WriteString("Date: " + n.date + "\n")
	b.WriteString("Message-ID: " + n.msgID + "\n")
	b.WriteString(n.extra)
	b.WriteString("MIME-Version: 1.0\n")
	b.WriteString("Content-Type: " + n.ctype + "\n")
	if n.cte != "" {
		b.WriteString("Content-Transfer-Encoding: " + n.cte + "\n")
	}
	return b.String()
}

// full returns the report as the MTA sent it.
func (n *wgNDR) full() string { return n.header() + "\n" + n.body }

func encWord(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return "=?UTF-8?B?" + base64.StdEncoding.EncodeToString([]byte(s)) + "?="
		}
	}
	return s
}

const wgOrigHeader = "Return-Path: <alice@corp.example>\n" +
	"From: Alice Martin <alice@corp.example>\n" +
	"To: Bob <bob@remote.example>\n" +
	"Subject: " + wgOrigSubject + "\n" +
	"Date: Thu, 9 May 2024 09:58:11 +0200\n" +
	"Message-ID: <b7e1c2d3@corp.example>\n" +
	"MIME-Version: 1.0\n" +
	"Content-Type: text/plain; charset=utf-8\n"

const wgOrigBody = "Hi Bob,\n\nplease find the figures below.\n\nAlice\n"

func dsnPart(action, status, diag string) string {
	return "Reporting-MTA: dns; mx1.corp.example\n" +
		"Arrival-Date: Thu, 9 May 2024 09:58:12 +0200\n\n" +
		"Final-Recipient: rfc822; bob@remote.example\n" +
		"Original-Recipient: rfc822;bob@remote.example\n" +
		"Action: " + action + "\n" +
		"Status: " + status + "\n" +
		"Remote-MTA: dns; mx.remote.example\n" +
		"Diagnostic-Code: smtp; " + diag + "\n"
}

func report(boundary, text, dsn string, headersOnly bool) string {
	ret := "Content-Type: message/rfc822\n\n" + wgOrigHeader + "\n" + wgOrigBody
	if headersOnly {
		ret = "Content-Type: text/rfc822-headers\n\n" + wgOrigHeader
	}
	return "This is a MIME-encapsulated message.\n\n--" + boundary + "\n" +
		"Content-Description: Notification\nContent-Type: text/plain; charset=utf-8\n\n" + text + "\n--" + boundary + "\n" +
		"Content-Description: Delivery report\nContent-Type: message/delivery-status\n\n" + dsn + "\n--" + boundary + "\n" +
		"Content-Description: Undelivered Message\n" + ret + "\n--" + boundary + "--\n"
}

// htmlize renders text as simple HTML, writing the Latin letters with
// named character references as Outlook and webmail do.
func htmlize(text string) string {
	r := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "é", "&eacute;", "è", "&egrave;", "ê", "&ecirc;",
		"à", "&agrave;", "â", "&acirc;", "ç", "&ccedil;", "ô", "&ocirc;", "ü", "&uuml;", "ö", "&ouml;", "ä", "&auml;",
		"ß", "&szlig;", "ñ", "&ntilde;", "á", "&aacute;", "í", "&iacute;", "ó", "&oacute;", "ú", "&uacute;",
		"å", "&aring;", "ø", "&oslash;", "æ", "&aelig;", "ã", "&atilde;", "Ä", "&Auml;", "Ö", "&Ouml;", "Ü", "&Uuml;",
		"É", "&Eacute;", "À", "&Agrave;", "\u00a0", "&nbsp;")
	var b strings.Builder
	for _, line := range strings.Split(text, "\n") {
		b.WriteString("<div>" + r.Replace(line) + "</div>\n")
	}
	return b.String()
}

// wgReports returns the reports of every family for one language, variant v.
func wgReports(l *wgLang, v int) []wgNDR {
	date := "Thu, 9 May 2024 09:58:13 +0200"
	var out []wgNDR
	add := func(n wgNDR) {
		n.date = date
		n.msgID = fmt.Sprintf("<%s.%s.%d@mx1.corp.example>", n.family, l.code, v)
		if n.html == "" {
			n.html = htmlize(n.text)
		}
		if n.action == "" {
			n.action = DSNFailed
		}
		out = append(out, n)
	}
	// Postfix.
	pfText := "This is the mail system at host mx1.corp.example.\n\n" +
		"I'm sorry to have to inform you that your message could not\nbe delivered to one or more recipients. It's attached below.\n\n" +
		"For further assistance, please send mail to postmaster.\n\n" +
		"                   The mail system\n\n" +
		"<bob@remote.example>: host mx.remote.example[192.0.2.25] said: 550 5.1.1\n" +
		"    <bob@remote.example>: Recipient address rejected: User unknown (in reply to\n    RCPT TO command)\n"
	add(wgNDR{family: "postfix", from: "MAILER-DAEMON@mx1.corp.example (Mail Delivery System)",
		subject: "Undelivered Mail Returned to Sender", extra: "Auto-Submitted: auto-replied\n",
		ctype: "multipart/report; report-type=delivery-status;\n\tboundary=\"PF.1715241493/mx1\"",
		body:  report("PF.1715241493/mx1", pfText, dsnPart("failed", "5.1.1", "550 5.1.1 <bob@remote.example>: Recipient address rejected: User unknown"), false),
		text:  pfText})
	// Exim.
	exText := "This message was created automatically by mail delivery software.\n\n" +
		"A message that you sent could not be delivered to one or more of its\n" +
		"recipients. This is a permanent error. The following address(es) failed:\n\n" +
		"  bob@remote.example\n    host mx.remote.example [192.0.2.25]\n" +
		"    SMTP error from remote mail server after RCPT TO:<bob@remote.example>:\n" +
		"    550 5.1.1 <bob@remote.example>: Recipient address rejected: User unknown\n\n" +
		"------ This is a copy of the message, including all the headers. ------\n\n"
	add(wgNDR{family: "exim", from: "Mail Delivery System <Mailer-Daemon@mx1.corp.example>",
		subject: "Mail delivery failed: returning message to sender", extra: "X-Failed-Recipients: bob@remote.example\nAuto-Submitted: auto-replied\n",
		ctype: "text/plain; charset=us-ascii", body: exText + wgOrigHeader + "\n" + wgOrigBody, text: exText + wgOrigHeader + "\n" + wgOrigBody})
	// Sendmail.
	smText := "The original message was received at Thu, 9 May 2024 09:58:12 +0200\nfrom [10.0.0.7]\n\n" +
		"   ----- The following addresses had permanent fatal errors -----\n<bob@remote.example>\n" +
		"    (reason: 550 5.1.1 <bob@remote.example>... User unknown)\n\n" +
		"   ----- Transcript of session follows -----\n... while talking to mx.remote.example.:\n" +
		">>> DATA\n<<< 550 5.1.1 <bob@remote.example>... User unknown\n550 5.1.1 <bob@remote.example>... User unknown\n"
	add(wgNDR{family: "sendmail", from: "Mail Delivery Subsystem <MAILER-DAEMON@mx1.corp.example>",
		subject: "Returned mail: see transcript for details", extra: "Auto-Submitted: auto-generated (failure)\n",
		ctype: "multipart/report; report-type=delivery-status; boundary=\"SM7D1\"",
		body:  report("SM7D1", smText, dsnPart("failed", "5.1.1", "550 5.1.1 <bob@remote.example>... User unknown"), true), text: smText})
	// qmail, the short notice of a vpopmail/qmail-ldap set-up: weak.
	qmText := "Message could not be delivered.\n\n<bob@remote.example>:\n192.0.2.25 does not like recipient.\n" +
		"Remote host said: 550 5.1.1 <bob@remote.example>: unknown user\nGiving up on 192.0.2.25.\n\n" +
		"--- Below this line is a copy of the message.\n\n"
	add(wgNDR{family: "qmail-short", weak: true, from: "MAILER-DAEMON@mail.corp.example", subject: "failure notice",
		ctype: "text/plain; charset=us-ascii", body: qmText + wgOrigHeader + "\n" + wgOrigBody, text: qmText + wgOrigHeader + "\n" + wgOrigBody})
	// Exchange Online, in the user's language.
	rcpt := "bob@remote.example"
	exLocal := fmt.Sprintf(l.exText, rcpt)
	exoText := exLocal + "\n\n" + "bob@remote.example\nRemote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup'\n\n" +
		"Diagnostic information for administrators:\n\nGenerating server: AM0PR01MB1234.eurprd01.prod.outlook.com\n\n" +
		"bob@remote.example\nRemote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup'\n"
	exoBody := "--EXO_b\nContent-Type: multipart/alternative; boundary=\"EXO_a\"\n\n" +
		"--EXO_a\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n" + wrap64(exoText) + "\n" +
		"--EXO_a\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n" + qp("<html><body>"+htmlize(exoText)+"</body></html>") + "\n--EXO_a--\n\n" +
		"--EXO_b\nContent-Type: message/delivery-status\n\n" + dsnPart("failed", "5.1.10", "550 5.1.10 RESOLVER.ADR.RecipientNotFound") + "\n" +
		"--EXO_b\nContent-Type: message/rfc822\n\n" + wgOrigHeader + "\n" + wgOrigBody + "\n--EXO_b--\n"
	add(wgNDR{family: "exchange", from: "Microsoft Outlook <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@corp.example>",
		subject: l.exSubject + ": " + wgOrigSubject, extra: "X-MS-Exchange-Message-Is-Ndr:\nAuto-Submitted: auto-replied\n",
		ctype: "multipart/report; report-type=delivery-status; boundary=\"EXO_b\"", body: exoBody, text: exoText})
	// Gmail.
	gmText := "** Address not found **\n\nYour message wasn't delivered to bob@remote.example because the address couldn't be found, or is unable to receive mail.\n\n" +
		"The response from the remote server was:\n550 5.1.1 The email account that you tried to reach does not exist.\n"
	add(wgNDR{family: "gmail", from: "Mail Delivery Subsystem <mailer-daemon@googlemail.com>", subject: "Delivery Status Notification (Failure)",
		ctype: "multipart/report; report-type=delivery-status; boundary=\"000000000000gm\"",
		body:  report("000000000000gm", gmText, dsnPart("failed", "5.1.1", "smtp; 550-5.1.1 The email account that you tried to reach does not exist"), false), text: gmText})
	// A Japanese carrier's notice: weak.
	jpText := "このメールは、送信できなかったメールの宛先についてのお知らせです。\n以下のアドレスへの送信に失敗しました。\n\n" +
		"bob@remote.example\n\n理由: 宛先のアドレスが存在しません。\n"
	add(wgNDR{family: "jp-mobile", weak: true, from: "Mail Administrator <Postmaster@mx.mobile.example.jp>", subject: "送信エラーのお知らせ",
		ctype: "text/plain; charset=utf-8", cte: "base64", body: wrap64(jpText), text: jpText})
	// A French ISP's "non remis": weak.
	frText := "Votre message n'a pas été remis aux destinataires suivants :\n\nbob@remote.example\n\n" +
		"Raison : l'adresse du destinataire est inconnue.\n"
	add(wgNDR{family: "fr-isp", weak: true, from: "Service de messagerie <postmaster@mail.isp.example.fr>", subject: "Message non remis",
		ctype: "text/plain; charset=utf-8", cte: "quoted-printable", body: qp(frText), text: frText})
	// Courier's delay warning.
	coText := "This is a delivery status notification from mx1.corp.example,\nrunning the Courier mail server, version 1.1.2.\n\n" +
		"The original message was received on Thu, 09 May 2024 09:58:12 +0200\nfrom localhost [127.0.0.1]\n\n" +
		"                   THIS IS A WARNING MESSAGE ONLY\n\n              YOU DO NOT NEED TO RESEND YOUR MESSAGE\n\n" +
		"Delivery to the following recipients has been delayed, and is still\nbeing attempted:\n\n" +
		"<bob@remote.example>:\nmx.remote.example [192.0.2.25]:\n<<< 451 4.7.1 Please try again later\n"
	add(wgNDR{family: "courier-delay", weak: true, from: "Courier mail server at mx1.corp.example <@>", subject: "WARNING: delayed mail.",
		ctype: "multipart/report; report-type=delivery-status; boundary=\"=_courier-1\"", action: DSNDelayed,
		body: report("=_courier-1", coText, dsnPart("delayed", "4.7.1", "smtp; 451 4.7.1 Please try again later"), true), text: coText})
	// An Exim filter's "fail", no Subject: weak.
	efText := "This message was created automatically by mail delivery software.\n\n" +
		"A message that you sent was rejected by the recipient's filter:\n\n  bob@remote.example\n    This mailbox is closed; write to bob@new.example instead.\n"
	add(wgNDR{family: "exim-filter", weak: true, from: "Mail Delivery System <Mailer-Daemon@mx.remote.example>",
		ctype: "text/plain; charset=us-ascii", body: efText, text: efText})
	// Lotus Domino.
	doText := "Your message\n\n  Subject: " + wgOrigSubject + "\n\nwas not delivered to:\n\n  bob@remote.example\n\nbecause:\n\n" +
		"  User bob (bob@remote.example) not listed in Domino Directory\n"
	add(wgNDR{family: "domino", from: "Postmaster <postmaster@notes.corp.example>",
		subject: "DELIVERY FAILURE: User bob (bob@remote.example) not listed in Domino Directory",
		ctype:   "text/plain; charset=us-ascii", body: doText, text: doText})
	// Yahoo.
	yaText := "Sorry, we were unable to deliver your message to the following address.\n\n<bob@remote.example>:\n" +
		"554: delivery error: dd This user doesn't have a yahoo.com account (bob@remote.example) [0] - mta1070.mail.ne1.yahoo.com\n\n" +
		"--- Below this line is a copy of the message.\n\n"
	add(wgNDR{family: "yahoo", from: "MAILER-DAEMON@yahoo.com", subject: "Failure Notice",
		ctype: "text/plain; charset=us-ascii", body: yaText + wgOrigHeader + "\n" + wgOrigBody, text: yaText + wgOrigHeader + "\n" + wgOrigBody})
	return out
}

func wrap64(s string) string {
	e := base64.StdEncoding.EncodeToString([]byte(s))
	var b strings.Builder
	for len(e) > 76 {
		b.WriteString(e[:76] + "\n")
		e = e[76:]
	}
	return b.String() + e + "\n"
}

func qp(s string) string {
	var b bytes.Buffer
	w := quotedprintable.NewWriter(&b)
	_, _ = w.Write([]byte(s))
	_ = w.Close()
	return b.String()
}

// A generated case.
type wgCase struct {
	name    string // unique; the held-out choice hashes it
	form    string // how it was passed on
	family  string
	lang    string
	sender  string
	rcpts   []string
	opts    Options
	stored  bool // read as a stored file (envelope in Return-Path)
	raw     string
	want    Kind
	wantSig string
}

func (c *wgCase) heldOut() bool {
	h := fnv.New32a()
	h.Write([]byte(c.name))
	return h.Sum32()%5 == 0
}

var wgLocal = []string{"corp.example"}

// wgDisplayFrom is the report's sender as a client prints it in a header block.
func wgDisplayFrom(client, from string) string {
	name, addr := from, ""
	if i := strings.IndexByte(from, '<'); i >= 0 {
		name, addr = strings.TrimSpace(from[:i]), strings.Trim(from[i:], "<> ")
	} else if i := strings.IndexByte(from, '('); i >= 0 {
		name, addr = strings.Trim(from[i:], "() "), strings.TrimSpace(from[:i])
	} else {
		name, addr = from, from
	}
	switch client {
	case "outlook", "outlook-html", "owa":
		return name + " [mailto:" + addr + "]"
	case "notes":
		return name + " <" + addr + ">"
	case "apple":
		return "\"" + name + "\" <" + addr + ">"
	}
	return name + " <" + addr + ">"
}

// wgInline forwards a report inline as one client does in one language.
// It returns the forward's subject and its body part (header and body).
func wgInline(client string, l *wgLang, n *wgNDR, subjMode int) (subject, part string) {
	pfx := l.fwd[1]
	switch client {
	case "outlook", "outlook-html", "owa", "outlook-mobile":
		pfx = l.fwd[0]
	}
	orig := n.subject
	switch {
	case subjMode == 2:
		subject = l.note // the person wrote a subject of their own
	case orig == "":
		subject = pfx + ": "
	default:
		subject = pfx + ": " + orig
	}
	from := wgDisplayFrom(client, n.from)
	date := "Thursday, May 9, 2024 9:58 AM"
	var b strings.Builder
	plain := func() {
		b.WriteString("Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n")
	}
	switch client {
	case "outlook":
		plain()
		fmt.Fprintf(&b, "%s\n\n%s\n%s: %s\n%s: %s\n%s: alice@corp.example\n%s: %s\n\n%s\n",
			l.note, l.outlookSep, l.from, from, l.sent, date, l.to, l.subject, orig, n.text)
	case "owa":
		plain()
		fmt.Fprintf(&b, "%s\n\n________________________________\n%s: %s\n%s: %s\n%s: Alice Martin <alice@corp.example>\n%s: %s\n\n%s\n",
			l.note, l.from, from, l.sent, date, l.to, l.subject, orig, n.text)
	case "outlook-mobile":
		plain()
		fmt.Fprintf(&b, "%s\n\nGet Outlook for Android\n________________________________\n%s: %s\n%s: %s\n%s: Alice Martin <alice@corp.example>\n%s: %s\n\n%s\n",
			l.note, l.from, from, l.sent, date, l.to, l.subject, orig, n.text)
	case "outlook-html":
		b.WriteString("Content-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n")
		h := fmt.Sprintf("<html><head><style>p.MsoNormal{margin:0}</style></head><body lang=%s>"+
			"<p class=MsoNormal>%s</p><p class=MsoNormal>&nbsp;</p>"+
			"<div style='border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm'>"+
			"<p class=MsoNormal><b>%s:</b> %s<br><b>%s:</b> %s<br><b>%s:</b> alice@corp.example<br><b>%s:</b> %s</p></div>"+
			"<p class=MsoNormal>&nbsp;</p>%s</body></html>",
			l.code, htmlEsc(l.note), htmlEsc(l.from), htmlEsc(from), htmlEsc(l.sent), date, htmlEsc(l.to), htmlEsc(l.subject), htmlEsc(orig), n.html)
		b.WriteString(qp(h))
	case "gmail":
		b.WriteString("Content-Type: text/html; charset=\"UTF-8\"\nContent-Transfer-Encoding: quoted-printable\n\n")
		h := fmt.Sprintf("<div dir=\"ltr\">%s<br><br><div class=\"gmail_quote\"><div dir=\"ltr\" class=\"gmail_attr\">%s<br>"+
			"%s: <strong class=\"gmail_sendername\" dir=\"auto\">%s</strong><br>Date: %s<br>Subject: %s<br>To: &lt;alice@corp.example&gt;<br></div><br><br>%s</div></div>",
			htmlEsc(l.note), htmlEsc(l.gmailSep), htmlEsc(l.from), htmlEsc(from), "Thu, May 9, 2024 at 9:58\u202fAM", htmlEsc(orig), n.html)
		b.WriteString(qp(h))
	case "apple":
		plain()
		fmt.Fprintf(&b, "%s\n\n%s\n\n%s: %s\n%s: %s\n%s: %s\n%s: alice@corp.example\n\n%s\n",
			l.note, l.appleSep, l.from, from, l.subject, orig, l.date, "9 May 2024 at 09:58:13 CEST", l.to, n.text)
	case "thunderbird":
		plain()
		fmt.Fprintf(&b, "%s\n\n\n%s\n%s: \t%s\n%s: \t%s\n%s: \t%s\n%s: \talice@corp.example\n\n\n\n%s\n",
			l.note, l.tbSep, l.subject, orig, l.date, "Thu, 9 May 2024 09:58:13 +0200", l.from, from, l.to, n.text)
	case "zimbra":
		plain()
		fmt.Fprintf(&b, "%s\n\n%s\n%s: %s\n%s: \"Alice Martin\" <alice@corp.example>\n%s: %s\n%s: %s\n\n%s\n",
			l.note, l.zimbraSep, l.from, from, l.to, l.sent, "Thursday, 9 May, 2024 9:58:13 AM", l.subject, orig, n.text)
	case "notes":
		plain()
		fmt.Fprintf(&b, "%s\n\n----- %s Alice Martin/CORP %s 09.05.2024 10:15 -----\n\n%s:\t%s\n%s:\talice@corp.example\n%s:\t09.05.2024 09:58\n%s:\t%s\n\n\n%s\n",
			l.note, l.notesBy, l.notesOn, l.from, from, l.to, l.date, l.subject, orig, n.text)
	case "roundcube", "sogo":
		plain()
		fmt.Fprintf(&b, "%s\n\n%s\n%s: %s\n%s: %s\n%s: %s\n%s: alice@corp.example\n\n%s\n",
			l.note, l.origSep, l.subject, orig, l.date, "2024-05-09 09:58", l.from, from, l.to, n.text)
	case "k9":
		plain()
		fmt.Fprintf(&b, "%s\n\n-------- Original Message --------\nFrom: %s\nSent: %s\nTo: alice@corp.example\nSubject: %s\n\n%s\n",
			l.note, from, "May 9, 2024 9:58:13 AM GMT+02:00", orig, n.text)
	case "samsung":
		plain()
		fmt.Fprintf(&b, "%s\n\n\nSent from my Galaxy\n\n\n-------- Original message --------\n%s: %s \n%s: 09/05/2024 09:58 (GMT+01:00) \n%s: alice@corp.example \n%s: %s \n\n%s\n",
			l.note, l.from, from, l.date, l.to, l.subject, orig, n.text)
	case "quoted-wrote":
		// A forward written as a reply: "Fwd:" and the report quoted
		// below an attribution line (some mobile and webmail clients).
		plain()
		fmt.Fprintf(&b, "%s\n\n%s, %s wrote:\n", l.note, n.date, n.from)
		for _, line := range strings.Split(n.text, "\n") {
			b.WriteString("> " + line + "\n")
		}
		if subjMode == 2 || orig == "" {
			subject = pfx + ": " + l.note
		}
	case "thunderbird-html":
		b.WriteString("Content-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n")
		fmt.Fprintf(&b, "<html><body><p>%s</p><div class=\"moz-forward-container\"><br><br>%s<br>"+
			"<table class=\"moz-email-headers-table\" border=\"0\" cellpadding=\"0\" cellspacing=\"0\"><tbody>"+
			"<tr><th valign=\"BASELINE\" nowrap=\"nowrap\" align=\"RIGHT\">%s: </th><td>%s</td></tr>"+
			"<tr><th valign=\"BASELINE\" nowrap=\"nowrap\" align=\"RIGHT\">%s: </th><td>%s</td></tr>"+
			"<tr><th valign=\"BASELINE\" nowrap=\"nowrap\" align=\"RIGHT\">%s: </th><td>%s</td></tr>"+
			"<tr><th valign=\"BASELINE\" nowrap=\"nowrap\" align=\"RIGHT\">%s: </th><td>alice@corp.example</td></tr>"+
			"</tbody></table><br>%s</div></body></html>\n",
			htmlEsc(l.note), htmlEsc(l.tbSep), htmlEsc(l.subject), htmlEsc(orig), htmlEsc(l.date), "Thu, 9 May 2024 09:58:13 +0200",
			htmlEsc(l.from), htmlEsc(from), htmlEsc(l.to), n.html)
	case "mutt-quoted":
		// Mutt (forward_quote) and Evolution ("Forward quoted"): the
		// forwarded header and text behind "> ".
		plain()
		var q strings.Builder
		fmt.Fprintf(&q, "Date: %s\nFrom: %s\nTo: alice@corp.example\nSubject: %s\n\n%s", n.date, n.from, orig, n.text)
		fmt.Fprintf(&b, "%s\n\n----- Forwarded message from %s -----\n\n", l.note, n.from)
		for _, line := range strings.Split(q.String(), "\n") {
			b.WriteString("> " + line + "\n")
		}
		b.WriteString("\n----- End forwarded message -----\n")
	}
	return subject, b.String()
}

func htmlEsc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "é", "&eacute;", "ü", "&uuml;", "ä", "&auml;", "ö", "&ouml;").Replace(s)
}

var wgClients = []string{"outlook", "owa", "outlook-mobile", "outlook-html", "gmail", "apple", "thunderbird", "zimbra", "notes", "roundcube", "sogo", "k9", "samsung", "mutt-quoted", "quoted-wrote", "thunderbird-html"}

func wgPerson(subject, part string) string {
	return "From: Alice Martin <alice@corp.example>\nTo: helpdesk@support.example\nSubject: " + encWord(subject) +
		"\nDate: Thu, 9 May 2024 10:15:00 +0200\nMessage-ID: <fwd.1@corp.example>\nMIME-Version: 1.0\n" + part
}

// wgCases builds every case.
func wgCases() []wgCase {
	var cases []wgCase
	out := []string{"helpdesk@support.example"}
	for li := range wgLangs {
		l := &wgLangs[li]
		for v := 0; v < 2; v++ {
			for _, n := range wgReports(l, v) {
				n := n
				id := l.code + "/" + n.family + "/" + fmt.Sprint(v)
				// The report itself, arriving.
				if v == 0 {
					cases = append(cases, wgCase{name: "original/" + id, form: "original", family: n.family, lang: l.code,
						sender: "", rcpts: []string{"alice@corp.example"}, opts: Options{LocalDomains: wgLocal},
						raw: n.full(), want: KindBounce})
				}
				// Inline, by every client.
				for ci, client := range wgClients {
					if (ci+v)%2 == 1 {
						continue // half the clients per variant
					}
					mode := (ci + li + v) % 4 // 2: a subject of the person's own
					subj, part := wgInline(client, l, &n, mode)
					cases = append(cases, wgCase{name: "inline/" + client + "/" + id, form: "inline:" + client, family: n.family, lang: l.code,
						sender: "alice@corp.example", rcpts: out, raw: wgPerson(subj, part), want: KindForwardedNDR})
				}
				// As an attachment.
				att := []string{"rfc822", "eml-octet"}
				for _, a := range att[v : v+1] {
					subj := l.fwd[0] + ": " + n.subject
					var ap string
					if a == "rfc822" {
						ap = "Content-Type: message/rfc822\nContent-Disposition: attachment; filename=\"report.eml\"\n\n" + n.full()
					} else {
						ap = "Content-Type: application/octet-stream; name=\"report.eml\"\nContent-Disposition: attachment; filename=\"report.eml\"\nContent-Transfer-Encoding: base64\n\n" + wrap64(n.full())
					}
					part := "Content-Type: multipart/mixed; boundary=\"ATT-1\"\n\n--ATT-1\nContent-Type: text/plain; charset=utf-8\n\n" + l.note + "\n\n--ATT-1\n" + ap + "\n--ATT-1--\n"
					cases = append(cases, wgCase{name: "attach/" + a + "/" + id, form: "attach:" + a, family: n.family, lang: l.code,
						sender: "alice@corp.example", rcpts: out, raw: wgPerson(subj, part), want: KindForwardedNDR})
				}
				// Redirected and resent unchanged.
				for _, r := range wgRedirects(v) {
					cases = append(cases, r.redirected(wgCase{name: "redirect/" + r.form + "/" + id, form: "redirect:" + r.form, family: n.family, lang: l.code,
						want: r.want, wantSig: r.sig}, n.full()))
				}
			}
		}
		// Hard negatives: the same clients forwarding ordinary mail; a
		// reply about a report; ordinary mail redirected.
		plainMail := wgNDR{family: "ordinary", from: "Bob <bob@remote.example>", subject: "Quarterly figures",
			text: "Hi Alice,\n\nthe figures look fine. The delivery of the parts failed twice last week, the courier\nsays the address could not be found.\n\nBob\n"}
		plainMail.html = htmlize(plainMail.text)
		plainMail.date, plainMail.msgID, plainMail.ctype = "Thu, 9 May 2024 09:00:00 +0200", "<o.1@remote.example>", "text/plain; charset=utf-8"
		plainMail.body = plainMail.text
		for ci, client := range wgClients {
			subj, part := wgInline(client, l, &plainMail, ci%3)
			cases = append(cases, wgCase{name: "neg/inline/" + client + "/" + l.code, form: "neg:inline", family: "ordinary", lang: l.code,
				sender: "alice@corp.example", rcpts: out, raw: wgPerson(subj, part), want: KindOrdinary})
		}
		// A postmaster's notice that is no report, forwarded and redirected.
		notice := wgNDR{family: "postmaster-notice", from: "Postmaster <postmaster@corp.example>", subject: "Scheduled maintenance on Saturday",
			text: "Dear users,\n\nthe mail servers will be updated on Saturday between 06:00 and 08:00.\nWebmail stays available.\n\nYour postmaster team\n"}
		notice.html = htmlize(notice.text)
		notice.date, notice.msgID, notice.ctype = "Thu, 9 May 2024 08:00:00 +0200", "<n.1@corp.example>", "text/plain; charset=utf-8"
		notice.body = notice.text
		for ci, client := range wgClients {
			if ci%2 == 1 {
				continue
			}
			subj, part := wgInline(client, l, &notice, ci%2)
			cases = append(cases, wgCase{name: "neg/notice-inline/" + client + "/" + l.code, form: "neg:notice", family: "ordinary", lang: l.code,
				sender: "alice@corp.example", rcpts: out, raw: wgPerson(subj, part), want: KindOrdinary})
		}
		for _, r := range wgRedirects(0) {
			if r.want != KindForwardedNDR || r.sender == "" {
				// With the null sender, a report sender's message is
				// a bounce as it stands.
				continue
			}
			cases = append(cases, r.redirected(wgCase{name: "neg/notice-redirect/" + r.form + "/" + l.code, form: "neg:notice", family: "ordinary", lang: l.code,
				want: KindOrdinary}, notice.header()+"\n"+notice.body))
		}
		for _, r := range wgRedirects(0) {
			if r.want != KindForwardedNDR {
				continue
			}
			cases = append(cases, r.redirected(wgCase{name: "neg/redirect/" + r.form + "/" + l.code, form: "neg:redirect", family: "ordinary", lang: l.code,
				want: KindOrdinary}, plainMail.header()+"\n"+plainMail.body))
		}
		reply := "Content-Type: text/plain; charset=utf-8\n\n" + l.note + "\n\nOn Thu, 9 May 2024 at 09:58, Mail Delivery System <Mailer-Daemon@mx1.corp.example> wrote:\n" +
			"> This message was created automatically by mail delivery software.\n>\n> A message that you sent could not be delivered to one or more of its\n" +
			"> recipients. This is a permanent error. The following address(es) failed:\n>\n>   bob@remote.example\n"
		cases = append(cases, wgCase{name: "neg/reply/" + l.code, form: "neg:reply", family: "ordinary", lang: l.code,
			sender: "alice@corp.example", rcpts: out, raw: wgPerson("Re: Mail delivery failed: returning message to sender", reply), want: KindOrdinary})
	}
	return cases
}

type wgRedirect struct {
	form, sender, top, sig string
	rcpts                  []string
	opts                   Options
	stored                 bool
	want                   Kind
}

// redirected is c as r delivers it: r's envelope and options, inner behind
// r's header lines, and a Return-Path first when r is a stored copy.
func (r wgRedirect) redirected(c wgCase, inner string) wgCase {
	c.sender, c.rcpts, c.opts, c.stored, c.raw = r.sender, r.rcpts, r.opts, r.stored, r.top+inner
	if r.stored {
		c.raw = "Return-Path: <" + r.sender + ">\n" + c.raw
	}
	return c
}

// wgRedirects are the ways a report is passed on unchanged, with the
// envelope each leaves it with.
func wgRedirects(v int) []wgRedirect {
	out := []string{"alice.private@elsewhere.example"}
	rs := []wgRedirect{
		{form: "srs0", sender: "SRS0=x7Yq=MK=corp.example=alice@forwarder.example", sig: SignalSRSSender},
		{form: "srs1", sender: "SRS1=Qw3e=forwarder.example==x7Yq=MK=corp.example=alice@relay.example", sig: SignalSRSSender},
		{form: "batv", sender: "prvs=1304a1b2c3=alice@corp.example", sig: SignalBATVSender},
		{form: "exchange-online-srs", sender: "bounces+SRS=Kx7q1=MK=corp.example=alice@tenant.onmicrosoft.example",
			top: "X-MS-Exchange-Organization-AutoForwarded: true\n", sig: SignalSRSSender},
		{form: "gmail", sender: "alice+caf_=alice.private=elsewhere.example@gmail.com",
			top: "X-Forwarded-To: alice.private@elsewhere.example\nX-Forwarded-For: alice@gmail.com alice.private@elsewhere.example\nDelivered-To: alice@gmail.com\n", sig: SignalForwarderSender},
		{form: "local-sender", sender: "alice@corp.example", opts: Options{LocalDomains: wgLocal}, sig: SignalLocalSender},
		{form: "thunderbird-resend", sender: "alice@corp.example",
			top: "Resent-From: Alice Martin <alice@corp.example>\nResent-To: alice.private@elsewhere.example\nResent-Date: Thu, 9 May 2024 10:20:00 +0200\nResent-Message-ID: <rs.1@corp.example>\n", sig: SignalRedirected},
		{form: "procmail", sender: "alice@isp.example", top: "Delivered-To: alice@isp.example\n", sig: SignalSenderWasRecipient},
		{form: "exchange-rule", sender: "alice@corp.example", top: "X-MS-Exchange-Inbox-Rules-Loop: alice@corp.example\n", sig: SignalInboxRule},
		{form: "sieve-null", sender: "", top: "X-Sieve-Redirected-From: alice@corp.example\nDelivered-To: alice@corp.example\n",
			opts: Options{LocalDomains: wgLocal}, sig: SignalForwardingHeader},
		{form: "dotforward-null", sender: "", top: "Delivered-To: alice@corp.example\n", opts: Options{LocalDomains: wgLocal}, sig: SignalForwardingHeader},
		{form: "stored-srs0", sender: "SRS0=x7Yq=MK=corp.example=alice@forwarder.example", stored: true, sig: SignalSRSSender},
		{form: "stored-resend", sender: "alice@corp.example", stored: true,
			top: "Resent-From: alice@corp.example\nResent-To: alice.private@elsewhere.example\nResent-Date: Thu, 9 May 2024 10:20:00 +0200\n", sig: SignalRedirected},
		// Delivered once (Return-Path: <> written by the first MDA), sent
		// on by the mailbox, stored again at the far end.
		{form: "stored-delivered-twice", sender: "alice@corp.example", stored: true,
			top: "Received: by mx.elsewhere.example\nReturn-Path: <>\nDelivered-To: alice@corp.example\n", sig: SignalEarlierNullSender},
		// Outlook's client-side "Redirect": on behalf of the mailbox.
		{form: "outlook-redirect", sender: "alice@corp.example", top: "Sender: Alice Martin <alice@corp.example>\n", sig: SignalRedirected},
		// A virtual alias to an outside address keeps the null sender
		// and adds nothing: a report leaving again (the policy's part).
		{form: "alias-null", sender: "", opts: Options{LocalDomains: wgLocal}, sig: SignalOutbound, want: KindBounce},
	}
	for i := range rs {
		rs[i].rcpts = out
		if rs[i].want == "" {
			rs[i].want = KindForwardedNDR
		}
	}
	return rs
}

func (c *wgCase) message(t testing.TB) *Message {
	var m *Message
	var err error
	if c.stored {
		m, err = ReadStoredMessage(strings.NewReader(c.raw), 0)
	} else {
		m, err = ReadMessage(strings.NewReader(c.raw), Envelope{Sender: c.sender, Recipients: c.rcpts}, 0)
	}
	if err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}
	return m
}

// TestWorldGenerator classifies every generated case and reports recall by
// form, family and language, tune and held-out apart. Floors: hard
// negatives all ordinary; every split's recall of reports passed on (all
// forms together) at or above wgFloor; the tune split's at or above
// wgTuneFloor.
func TestWorldGenerator(t *testing.T) {
	const wgFloor, wgTuneFloor = 0.99, 0.995
	split := map[string]tallies{"tune": {}, "heldout": {}}
	bump := func(sp, key string, ok bool) { split[sp].add(key, ok) }
	var misses []string
	for _, c := range wgCases() {
		v := Classify(c.message(t), c.opts)
		ok := v.Kind == c.want && (c.wantSig == "" || v.Has(c.wantSig))
		sp := "tune"
		if c.heldOut() {
			sp = "heldout"
		}
		form := c.form
		if i := strings.IndexByte(form, ':'); i > 0 && !strings.HasPrefix(form, "neg") {
			bump(sp, "all:"+form[:i], ok)
		}
		bump(sp, "form:"+form, ok)
		if !strings.HasPrefix(form, "neg") && form != "original" {
			bump(sp, "family:"+c.family, ok)
			bump(sp, "lang:"+c.lang, ok)
			bump(sp, "ALL passed on", ok)
		}
		if c.want == KindOrdinary && v.Kind != KindOrdinary {
			t.Errorf("hard negative %s: %s", c.name, v.Explain())
		}
		if show := os.Getenv("WG_SHOW"); !ok && sp == "tune" && (show == "" || strings.Contains(c.name, show)) {
			misses = append(misses, c.name+"\n\t"+v.Explain())
		}
	}
	for _, sp := range []string{"tune", "heldout"} {
		var b strings.Builder
		fmt.Fprintf(&b, "\n%s split:\n", sp)
		split[sp].write(&b)
		t.Log(b.String())
	}
	logFirst(t, misses, 60)
	for sp, floor := range map[string]float64{"heldout": wgFloor, "tune": wgTuneFloor} {
		if tt := split[sp]["ALL passed on"]; tt != nil && float64(tt.right) < floor*float64(tt.n) {
			t.Errorf("%s: reports passed on recognized %d/%d, floor %.0f%%", sp, tt.right, tt.n, 100*floor)
		}
	}
}

// TestWorldGeneratorDump prints the cases whose name contains WG_DUMP, for
// looking at one by hand.
func TestWorldGeneratorDump(t *testing.T) {
	f := os.Getenv("WG_DUMP")
	if f == "" {
		t.Skip("WG_DUMP not set")
	}
	for _, c := range wgCases() {
		if strings.Contains(c.name, f) {
			v := Classify(c.message(t), c.opts)
			t.Logf("%s\n%s\n=> %s", c.name, c.raw, v.Explain())
		}
	}
}
