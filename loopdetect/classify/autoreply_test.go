package classify

import (
	"strings"
	"testing"
)

// TestAutoReplyBreadth: responders of many vendors and languages, and the
// hard negatives that must stay ordinary. Each case is a whole message as
// the responder (or the person) writes it.
func TestAutoReplyBreadth(t *testing.T) {
	oof := "X-Auto-Response-Suppress: All\nAuto-Submitted: auto-generated\nIn-Reply-To: <q.1@example.org>\n"
	tests := []struct {
		name, sender, header, body string
		want                       Kind
	}{
		// Exchange/Outlook out-of-office, localized subject prefixes.
		{"exchange en", "bob@corp.example", oof + "Subject: Automatic reply: Budget\n", "I am out of the office until Monday.", KindAutoReply},
		{"exchange uk", "bob@corp.example", oof + "Subject: Автоматична відповідь: Бюджет\n", "Мене немає в офісі.", KindAutoReply},
		{"exchange ca", "bob@corp.example", oof + "Subject: Resposta automàtica: Pressupost\n", "Sóc fora de l'oficina.", KindAutoReply},
		{"exchange lv", "bob@corp.example", oof + "Subject: Automātiskā atbilde: Budžets\n", "Esmu prom.", KindAutoReply},
		{"exchange lt", "bob@corp.example", oof + "Subject: Automatinis atsakymas: Biudžetas\n", "Manęs nėra.", KindAutoReply},
		{"exchange et", "bob@corp.example", oof + "Subject: Automaatvastus: Eelarve\n", "Olen kontorist väljas.", KindAutoReply},
		{"exchange bg", "bob@corp.example", oof + "Subject: Автоматичен отговор: Бюджет\n", "Не съм в офиса.", KindAutoReply},
		{"exchange he", "bob@corp.example", oof + "Subject: תשובה אוטומטית: תקציב\n", "אני מחוץ למשרד.", KindAutoReply},
		{"exchange ar", "bob@corp.example", oof + "Subject: رد تلقائي: الميزانية\n", "أنا خارج المكتب.", KindAutoReply},
		{"exchange id", "bob@corp.example", oof + "Subject: Balasan Otomatis: Anggaran\n", "Saya sedang cuti.", KindAutoReply},
		{"exchange vi", "bob@corp.example", oof + "Subject: Trả lời tự động: Ngân sách\n", "Tôi đang nghỉ phép.", KindAutoReply},
		{"exchange th", "bob@corp.example", oof + "Subject: ตอบกลับอัตโนมัติ: งบประมาณ\n", "ไม่อยู่", KindAutoReply},
		{"outlook 2003 oof", "bob@corp.example", "Subject: Out of Office AutoReply: Budget\n", "I am away.", KindAutoReply},
		// Gmail/Workspace vacation: the user's own subject.
		{"gmail vacation", "bob@gmail.example", "Auto-Submitted: auto-replied\nSubject: Holidays\n", "Back on the 5th.", KindAutoReply},
		// Sieve/Dovecot vacation (RFC 5230).
		{"sieve vacation", "bob@corp.example", "Auto-Submitted: auto-replied (vacation)\nPrecedence: bulk\nSubject: Auto: Budget\n", "Away.", KindAutoReply},
		// Zimbra.
		{"zimbra", "bob@corp.example", "Auto-Submitted: auto-replied (zimbra; vacation)\nSubject: Re: Budget\n", "I am away.", KindAutoReply},
		// Lotus Notes/Domino.
		{"notes", "bob@corp.example", "Subject: AUTO: Bob Smith is out of the office (returning 05/20/2024)\n", "I will be out of the office starting 05/10/2024.", KindAutoReply},
		// Yahoo and AOL.
		{"yahoo", "bob@yahoo.example", "Subject: Auto Response\n", "I am currently on vacation.", KindAutoReply},
		{"aol", "bob@aol.example", "Subject: Re: Budget (Automatic Response)\n", "I am away.", KindAutoReply},
		// Helpdesk acknowledgements.
		{"zendesk", "support@shop.example", "X-Zendesk-From-Account-Id: 12ab\nSubject: [Request received] Order 12\n", "Your request (4711) has been received and is being reviewed by our support staff.", KindAutoReply},
		{"freshdesk", "support@shop.example", "X-Freshdesk-Mailbox: 1\nSubject: Ticket Received - Order 12\n", "Thank you for contacting us. This is an automated response confirming the receipt of your ticket.", KindAutoReply},
		{"jira service management", "jira@corp.example", "Auto-Submitted: auto-generated\nPrecedence: bulk\nSubject: Request received: VPN broken\n", "We have received your request and will get back to you.", KindAutoReply},
		{"otrs", "otrs@corp.example", "X-Loop: yes\nPrecedence: bulk\nSubject: [Ticket#2024050910000011] RE: VPN broken\n", "Your request has been received. A ticket has been created.", KindAutoReply},
		{"zammad", "support@corp.example", "X-Loop: yes\nPrecedence: bulk\nAuto-Submitted: auto-generated\nX-Auto-Response-Suppress: All\nSubject: Thanks for your inquiry (VPN broken)\n", "Thanks for your email. A ticket has been created.", KindAutoReply},
		{"request tracker", "rt@corp.example", "RT-Ticket: corp.example #123\nPrecedence: bulk\nSubject: AutoReply: VPN broken\n", "Greetings, this message has been automatically generated in response to the creation of a trouble ticket.", KindAutoReply},
		// Challenge-response: a program's answer to a message, counted
		// as an auto-reply (see README.md).
		{"tmda", "bob-confirm-123.abc@corp.example", "X-Delivery-Agent: TMDA/1.1.12\nAuto-Submitted: auto-replied\nSubject: Re: Budget\n", "Your message is being held until you confirm it.", KindAutoReply},
		{"boxbe", "notify@boxbe.example", "X-Boxbe-Request-Id: 1\nSubject: Request to join Bob's Guest List\n", "Please confirm that you are a real person.", KindAutoReply},
		{"spamarrest", "bob@spamarrest.example", "Precedence: junk\nSubject: Re: Budget [Sender Verification Request]\n", "I am protected by Spam Arrest. Sender verification is required.", KindAutoReply},
		// No special header: subject and body.
		{"no header, null sender", "", "Subject: Out of office\n", "I am currently out of the office with limited access to email.", KindAutoReply},
		{"no header, person", "bob@corp.example", "Subject: Automatische Antwort\n", "Dies ist eine automatische Antwort.", KindAutoReply},
		{"body only", "bob@corp.example", "Subject: Re: Budget\n", "This is an automatic reply. I am away until Monday.", KindAutoReply},
		// Hard negatives.
		{"person: out of office next week", "bob@corp.example", "Subject: Out of office next week\n", "Hi all, I will be out of the office next week; Alice covers for me.", KindOrdinary},
		{"person: out of office", "bob@corp.example", "Subject: Out of office\n", "Team, I'll be out of office on Friday. Call me if needed.", KindOrdinary},
		{"person: away", "bob@corp.example", "Subject: Away: back Monday\n", "Hi Alice, away until Monday.", KindOrdinary},
		{"person quoting an auto-reply", "alice@corp.example", "Subject: RE: Automatic reply: Budget\n", "Bob, when are you back?\n\n> I am currently out of the office.\n> This is an automatic reply.", KindOrdinary},
		{"auto-generated notification", "jira@corp.example", "Auto-Submitted: auto-generated\nPrecedence: bulk\nSubject: [JIRA] (OPS-1) Disk full\n", "This is an automatically generated message. Do not reply.", KindOrdinary},
		{"newsletter", "news@shop.example", "Precedence: bulk\nList-Id: <news.shop.example>\nList-Unsubscribe: <mailto:u@shop.example>\nSubject: Out of office? Take us along\n", "This is an automatic reply to all the summer questions: our offers.", KindOrdinary},
		{"order confirmation", "shop@shop.example", "Subject: We have received your order\n", "Thank you for contacting us.", KindOrdinary},
		{"web form request received", "web@corp.example", "Subject: Request received: call back\n", "A visitor asked for a call back.", KindOrdinary},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := "From: x <" + tt.sender + ">\nTo: alice@example.org\nMessage-ID: <a.1@example.org>\n" + tt.header +
				"Content-Type: text/plain; charset=utf-8\n\n" + strings.ReplaceAll(tt.body, "\n", "\r\n") + "\r\n"
			v := Classify(mustRead(t, tt.sender, raw), Options{})
			if v.Kind != tt.want {
				t.Fatalf("kind = %s, want %s (%s)", v.Kind, tt.want, v.Explain())
			}
		})
	}
}
