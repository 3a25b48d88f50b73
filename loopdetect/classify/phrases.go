package classify

// This file holds the immutable tables the classifier matches against. They
// describe formats (what MTAs and mail clients write), never particular
// messages. Every string is lower case with single spaces, the form the
// text scanner folds body text into.

// phraseKind says what a body phrase is evidence of.
type phraseKind uint8

const (
	phFailure  phraseKind = iota // a non-delivery report
	phDelay                      // a delay warning ("still trying")
	phSuccess                    // a success DSN (delivered/relayed)
	phReturned                   // introduces the returned original message
	phRule                       // a mailbox rule forwarded this
	phAuto                       // an auto-responder's wording (weight 2: only responders say it)
)

type phrase struct {
	text   string
	kind   phraseKind
	weight int8 // 2: only NDRs say this; 1: NDRs and people both say it
}

// bodyPhrases are what MTAs write in the human-readable part of their
// reports (RFC 3464 2.1 leaves its wording free). Grouped by the software
// that writes them; the localized Exchange/Outlook texts follow.
var bodyPhrases = []phrase{
	// Postfix bounce(8).
	{"this is the mail system at host", phFailure, 2},
	{"i'm sorry to have to inform you that your message could not", phFailure, 2},
	{"could not be delivered to one or more recipients", phFailure, 2},
	{"for further assistance, please send mail to postmaster", phFailure, 2},
	{"if you do so, please include this problem report", phFailure, 2},
	{"you can delete your own text from the attached returned message", phFailure, 2},
	{"this is a warning only. you do not need to resend your message", phDelay, 2},
	{"# this is a warning only", phDelay, 2},
	{"your message could not be delivered for more than", phDelay, 2},
	{"your message was successfully delivered to the destination", phSuccess, 2},
	{"this is a delivery status notification", phFailure, 1},
	// Exim.
	{"this message was created automatically by mail delivery software", phFailure, 2},
	{"a message that you sent could not be delivered to one or more of its", phFailure, 2},
	{"the following address(es) failed", phFailure, 2},
	{"a message that you sent has not yet been delivered to one or more of its", phDelay, 2},
	{"no action is required on your part", phDelay, 1},
	{"delivery attempts will continue to be made for", phDelay, 2},
	{"smtp error from remote mail server after", phFailure, 2},
	{"all relevant mx records point to non-existent hosts", phFailure, 2},
	{"retry timeout exceeded", phFailure, 1},
	{"this is a copy of the message, including all the headers", phReturned, 2},
	{"this is a copy of the message's headers", phReturned, 2},
	{"this is a copy of your message, including all the headers", phReturned, 2},
	// qmail, vpopmail, netqmail.
	{"this is the qmail-send program at", phFailure, 2},
	{"i wasn't able to deliver your message to the following addresses", phFailure, 2},
	{"this is a permanent error; i've given up", phFailure, 2},
	{"sorry, no mailbox here by that name", phFailure, 2},
	{"i'm not going to try again; this message has been in the queue too long", phFailure, 2},
	{"i'm still trying", phDelay, 1},
	{"below this line is a copy of the message", phReturned, 2},
	// Sendmail.
	{"the original message was received at", phFailure, 2},
	{"the following addresses had permanent fatal errors", phFailure, 2},
	{"transcript of session follows", phFailure, 2},
	{"original message follows", phReturned, 1},
	{"message header follows", phReturned, 1},
	{"this is a warning message only", phDelay, 2},
	{"you do not need to resend your message", phDelay, 2},
	{"the following addresses had transient non-fatal errors", phDelay, 2},
	{"will keep trying until message is", phDelay, 2},
	{"could not be delivered for", phFailure, 1},
	{"warning: could not send message for past", phDelay, 2},
	// Microsoft Exchange, Office 365, Outlook.com.
	{"delivery has failed to these recipients or groups", phFailure, 2},
	{"your message did not reach some or all of the intended recipients", phFailure, 2},
	{"the following recipient(s) could not be reached", phFailure, 2},
	{"the following recipient(s) cannot be reached", phFailure, 2},
	{"diagnostic information for administrators", phFailure, 2},
	{"generating server:", phFailure, 2},
	{"your message couldn't be delivered", phFailure, 2},
	{"your message can't be delivered", phFailure, 2},
	{"your message wasn't delivered", phFailure, 2},
	{"delivery is delayed to these recipients or groups", phDelay, 2},
	{"this message hasn't been delivered yet", phDelay, 2},
	{"delivery to these recipients or groups is complete", phSuccess, 2},
	{"your message has been delivered to the following recipients", phSuccess, 2},
	{"original message headers", phReturned, 1},
	{"auto forwarded by a rule", phRule, 2},
	// Gmail and Google Workspace.
	{"this is an automatically generated delivery status notification", phFailure, 2},
	{"delivery to the following recipient failed permanently", phFailure, 2},
	{"delivery to the following recipients failed permanently", phFailure, 2},
	{"technical details of permanent failure", phFailure, 2},
	{"delivery to the following recipient has been delayed", phDelay, 2},
	{"technical details of temporary failure", phDelay, 2},
	{"there was a temporary problem delivering your message", phDelay, 2},
	{"the response from the remote server was", phFailure, 2},
	{"the recipient server did not accept our requests", phFailure, 2},
	{"we couldn't deliver your message", phFailure, 2},
	{"address not found", phFailure, 1},
	// Yahoo, AOL, Verizon.
	{"sorry, we were unable to deliver your message to the following address", phFailure, 2},
	{"this message was created automatically by the mail system", phFailure, 2},
	{"message will be deleted from queue", phFailure, 2},
	{"we have been unable to deliver your message", phFailure, 2},
	// Lotus Domino, GroupWise, Courier, MDaemon, Kerio, Zimbra, others.
	{"was not delivered to:", phFailure, 1},
	{"the message that you sent was undeliverable to the following", phFailure, 2},
	{"your message to the following recipients cannot be delivered", phFailure, 2},
	{"running the courier mail server", phFailure, 2},
	{"the attached message had permanent fatal errors", phFailure, 2},
	{"the attached message had transient", phDelay, 2},
	{"session transcript follows", phFailure, 1},
	{"unable to deliver your message to the following recipients", phFailure, 2},
	{"the following recipients did not receive this message", phFailure, 2},
	{"your message was not delivered to the following recipients", phFailure, 2},
	{"message you sent blocked by our bulk email filter", phFailure, 2},
	{"the following message to", phFailure, 1},
	{"cannot be delivered to the following address", phFailure, 2},
	{"could not be delivered to the following", phFailure, 2},
	{"could not be delivered to", phFailure, 1},
	{"requested action not taken", phFailure, 1},
	{"failed recipients", phFailure, 1},
	{"failure reasons", phFailure, 1},
	{"maximum hop count", phFailure, 1},
	{"too many hops", phFailure, 1},
	{"mail has been returned", phFailure, 1},
	{"message has been returned", phFailure, 1},
	{"has been postponed", phDelay, 1},
	{"returned mail follows", phReturned, 1},
	{"your message could not be sent", phFailure, 1},
	{"a transcript of the attempts to send the message follows", phFailure, 2},
	{"failed to send to identified host", phFailure, 2},
	{"message non-deliverable", phFailure, 2},
	{"non-deliverable", phFailure, 1},
	{"did not reach the following recipient", phFailure, 2},
	{"the recipient name is not recognized", phFailure, 2},
	{"unknown recipient", phFailure, 1},
	{"msexch:ims", phFailure, 2},
	{"was considered unsolicited bulk e-mail", phFailure, 2},
	{"delivery of the email was stopped", phFailure, 2},
	{"our internal reference code for your message is", phFailure, 1},
	{"was automatically rejected", phFailure, 1},
	{"mailbox full", phFailure, 1},
	{"mailbox for user is full", phFailure, 1},
	{"has been frozen by the system filter", phDelay, 2},
	{"have yet to be delivered", phDelay, 1},
	{"this is an automated error reply", phFailure, 2},
	{"cannot be delivered due to the following error", phFailure, 2},
	{"below is the header from the original message", phReturned, 1},
	{"no such mailbox", phFailure, 1},
	{"we were not able to deliver your message", phFailure, 2},
	{"not able to deliver your message", phFailure, 1},
	{"machine generated message from mail service", phFailure, 1},
	{"your message was not delivered", phFailure, 2},
	{"did not receive a copy of your message", phFailure, 2},
	{"permanent fatal delivery errors", phFailure, 2},
	{"failed addresses follow", phFailure, 2},
	{"message log follows", phFailure, 1},
	{"message text follows", phReturned, 1},
	{"invalid final delivery userid", phFailure, 2},
	{"your message has encountered delivery problems", phFailure, 2},
	{"user not known", phFailure, 1},
	{"your message reads (in part)", phReturned, 1},
	{"message not delivered to the following addresses", phFailure, 2},
	{"unsent message below", phReturned, 1},
	{"there were problems delivering your message", phFailure, 2},
	{"problems delivering your message", phFailure, 1},
	{"there was an error delivering your mail to", phFailure, 2},
	{"message headers follow", phReturned, 1},
	{"recipient addresses that were incorrectly constructed", phFailure, 2},
	{"we had trouble delivering your message", phFailure, 2},
	{"the following recipients returned permanent errors", phFailure, 2},
	{"the attachment contains the original mail headers", phReturned, 1},
	{"each of the following recipients was rejected by a remote mail server", phFailure, 2},
	{"the following recipients were affected", phFailure, 1},
	{"mailbox exceeds allowed size", phFailure, 1},
	{"unable to find user", phFailure, 1},
	{"domain does not exist", phFailure, 1},
	{"envelope expired", phFailure, 1},
	{"this person's account is exceeding their quota", phFailure, 1},
	{"of your original message follow", phReturned, 1},
	{"could not be delivered because", phFailure, 1},
	{"delivery failure report", phFailure, 1},
	{"non-delivery report", phFailure, 1},
	{"non delivery report", phFailure, 1},
	{"delivery status notification", phFailure, 1},
	{"undelivered mail returned to sender", phFailure, 1},
	{"message could not be delivered", phFailure, 1},
	{"mail could not be delivered", phFailure, 1},
	{"could not deliver", phFailure, 1},
	{"couldn't be delivered", phFailure, 1},
	{"cannot be delivered", phFailure, 1},
	{"unable to deliver", phFailure, 1},
	{"failed to deliver", phFailure, 1},
	{"delivery has failed", phFailure, 1},
	{"delivery failed", phFailure, 1},
	{"permanent fatal error", phFailure, 1},
	{"undeliverable", phFailure, 1},
	{"user unknown", phFailure, 1},
	{"unknown user", phFailure, 1},
	{"no such user", phFailure, 1},
	{"mailbox unavailable", phFailure, 1},
	{"mailbox not found", phFailure, 1},
	{"recipient address rejected", phFailure, 1},
	{"relay access denied", phFailure, 1},
	{"mailbox is full", phFailure, 1},
	{"over quota", phFailure, 1},
	{"quota exceeded", phFailure, 1},
	{"host unknown", phFailure, 1},
	{"unrouteable address", phFailure, 1},
	{"delivery has been delayed", phDelay, 1},
	{"has not yet been delivered", phDelay, 1},
	{"will continue to try", phDelay, 1},
	{"will be retried", phDelay, 1},
	{"was successfully delivered", phSuccess, 1},
	{"successfully relayed", phSuccess, 1},
	// Amazon SES notifications (JSON over SNS or e-mail).
	{`"notificationtype":"bounce"`, phFailure, 2},
	{`"notificationtype": "bounce"`, phFailure, 2},
	{`"notificationtype" : "bounce"`, phFailure, 2},
	{`"bouncetype":"permanent"`, phFailure, 2},
	{`"bouncedrecipients"`, phFailure, 2},
	{`"notificationtype":"delivery"`, phSuccess, 2},
	{`"notificationtype": "delivery"`, phSuccess, 2},
	{`"notificationtype" : "delivery"`, phSuccess, 2},
	// German.
	{"konnte nicht zugestellt werden", phFailure, 2},
	{"zustellung an folgende empfänger oder gruppen ist fehlgeschlagen", phFailure, 2},
	{"diagnoseinformationen für administratoren", phFailure, 2},
	{"ihre nachricht hat einige oder alle empfänger nicht erreicht", phFailure, 2},
	{"zustellung fehlgeschlagen", phFailure, 2},
	{"nicht zugestellt", phFailure, 1},
	{"unzustellbar", phFailure, 1},
	// French.
	{"n'a pas pu être remis", phFailure, 2},
	{"la remise aux destinataires ou groupes suivants a échoué", phFailure, 2},
	{"informations de diagnostic pour les administrateurs", phFailure, 2},
	{"impossible de remettre", phFailure, 2},
	{"n'a pas pu être distribué", phFailure, 2},
	{"échec de la remise", phFailure, 2},
	{"non remis", phFailure, 1},
	{"n'a pas été remis", phFailure, 1},
	{"non distribuable", phFailure, 1},
	// Spanish.
	{"no se pudo entregar", phFailure, 2},
	{"error en la entrega a estos destinatarios o grupos", phFailure, 2},
	{"información de diagnóstico para administradores", phFailure, 2},
	{"no pudo ser entregado", phFailure, 2},
	{"no ha podido ser entregado", phFailure, 2},
	{"no se puede entregar", phFailure, 1},
	// Italian.
	{"non è stato possibile recapitare", phFailure, 2},
	{"recapito non riuscito", phFailure, 2},
	{"informazioni di diagnostica per gli amministratori", phFailure, 2},
	{"impossibile recapitare", phFailure, 2},
	{"non recapitabile", phFailure, 1},
	// Dutch.
	{"kan niet worden bezorgd", phFailure, 2},
	{"kon niet worden bezorgd", phFailure, 2},
	{"kon niet worden afgeleverd", phFailure, 2},
	{"bezorging is mislukt", phFailure, 2},
	{"diagnostische gegevens voor beheerders", phFailure, 2},
	{"onbestelbaar", phFailure, 1},
	// Portuguese.
	{"não pôde ser entregue", phFailure, 2},
	{"não foi possível entregar", phFailure, 2},
	{"falha na entrega", phFailure, 2},
	{"informações de diagnóstico para administradores", phFailure, 2},
	// Scandinavian and Finnish.
	{"kunde inte levereras", phFailure, 2},
	{"leveransen misslyckades", phFailure, 2},
	{"diagnostisk information för administratörer", phFailure, 2},
	{"kunne ikke leveres", phFailure, 2},
	{"levering mislykkedes", phFailure, 2},
	{"leveringen mislyktes", phFailure, 2},
	{"ei voitu toimittaa", phFailure, 2},
	{"toimitus epäonnistui", phFailure, 2},
	{"olevererbart", phFailure, 1},
	// Polish, Czech, Slovak, Hungarian, Romanian.
	{"nie można dostarczyć", phFailure, 2},
	{"nie została dostarczona", phFailure, 2},
	{"nie został dostarczony", phFailure, 2},
	{"nie mogła zostać dostarczona", phFailure, 2},
	{"dostarczenie nie powiodło się", phFailure, 2},
	{"nelze doručit", phFailure, 2},
	{"nebylo možné doručit", phFailure, 2},
	{"doručení se nezdařilo", phFailure, 2},
	{"nedoručiteľné", phFailure, 1},
	{"nem sikerült kézbesíteni", phFailure, 2},
	{"a kézbesítés sikertelen", phFailure, 2},
	{"kézbesíthetetlen", phFailure, 1},
	{"nu a putut fi livrat", phFailure, 2},
	// Russian, Ukrainian, Bulgarian.
	{"не доставлено", phFailure, 2},
	{"не удалось доставить", phFailure, 2},
	{"не удается доставить", phFailure, 2},
	{"не может быть доставлено", phFailure, 2},
	{"недоставленное сообщение", phFailure, 2},
	{"ошибка доставки", phFailure, 2},
	{"не вдалося доставити", phFailure, 2},
	{"не може да бъде доставено", phFailure, 2},
	// Turkish, Greek.
	{"teslim edilemedi", phFailure, 2},
	{"teslim edilemiyor", phFailure, 2},
	{"δεν ήταν δυνατή η παράδοση", phFailure, 2},
	{"η παράδοση απέτυχε", phFailure, 2},
	// Japanese, Chinese, Korean.
	{"配信できません", phFailure, 2},
	{"配送できませんでした", phFailure, 2},
	{"配信できませんでした", phFailure, 2},
	{"送信できませんでした", phFailure, 2},
	{"配信に失敗しました", phFailure, 2},
	{"送信に失敗しました", phFailure, 1},
	{"無法傳遞", phFailure, 2},
	{"無法送達", phFailure, 2},
	{"无法投递", phFailure, 2},
	{"投递失败", phFailure, 2},
	{"无法送达", phFailure, 2},
	{"未能送达", phFailure, 2},
	{"无法传递", phFailure, 2},
	{"邮件发送失败", phFailure, 2},
	{"전달되지 않았습니다", phFailure, 2},
	{"배달되지 않았습니다", phFailure, 2},
	{"배달 실패", phFailure, 2},
	// What auto-responders write (RFC 3834 leaves it free): the out-of-
	// office texts of Exchange/Outlook, Gmail, Sieve and Notes users in
	// their languages, helpdesk acknowledgements (Zendesk, Freshdesk, Jira
	// Service Management, OTRS/Znuny, Zammad, RT) and challenge-response
	// requests (TMDA, Boxbe, SpamArrest). Weight 2: only a responder says
	// it; weight 1: people say it too, so another sign is wanted. The
	// footers of notifications ("this is an automatically generated
	// message", "diese Nachricht wurde automatisch erstellt") are left
	// out: a notification is no reply (RFC 3834 3.1.7).
	{"this is an automatic reply", phAuto, 2},
	{"this is an automated reply", phAuto, 2},
	{"this is an automatic response", phAuto, 2},
	{"this is an automated response", phAuto, 2},
	{"this is an auto-reply", phAuto, 2},
	{"this is an autoreply", phAuto, 2},
	{"this is an auto-generated response", phAuto, 2},
	{"this message is an automatic reply", phAuto, 2},
	{"this is an automated message confirming", phAuto, 2},
	{"this is an automated response confirming", phAuto, 2},
	{"i am currently out of the office", phAuto, 1},
	{"i am currently out of office", phAuto, 1},
	{"i'm currently out of the office", phAuto, 1},
	{"i am out of the office until", phAuto, 1},
	{"i am out of the office with", phAuto, 1},
	{"i am currently on vacation", phAuto, 1},
	{"i am currently on leave", phAuto, 1},
	{"i am currently away", phAuto, 1},
	{"limited access to email", phAuto, 1},
	{"limited access to e-mail", phAuto, 1},
	{"i will respond to your message when i return", phAuto, 1},
	{"i will respond to your email when i return", phAuto, 1},
	{"i will reply to your email when i return", phAuto, 1},
	{"i will respond to your e-mail when i return", phAuto, 1},
	{"upon my return", phAuto, 1},
	{"your request has been received", phAuto, 1},
	{"has been received and is being reviewed", phAuto, 1},
	{"we have received your request", phAuto, 1},
	{"we have received your message", phAuto, 1},
	{"a ticket has been created", phAuto, 1},
	{"your ticket has been created", phAuto, 1},
	{"ticket number has been assigned", phAuto, 1},
	{"please confirm that you are a real person", phAuto, 2},
	{"i am protected by", phAuto, 1},
	{"sender verification", phAuto, 1},
	{"your message is being held", phAuto, 1},
	{"challenge-response", phAuto, 1},
	{"dies ist eine automatische antwort", phAuto, 2},
	{"ich bin derzeit nicht im büro", phAuto, 1},
	{"ich bin zurzeit nicht im büro", phAuto, 1},
	{"ich bin nicht im büro", phAuto, 1},
	{"ich bin bis einschließlich", phAuto, 1},
	{"in dringenden fällen wenden sie sich", phAuto, 1},
	{"ceci est une réponse automatique", phAuto, 2},
	{"je suis absent du bureau", phAuto, 1},
	{"je suis actuellement absent", phAuto, 1},
	{"je serai absent", phAuto, 1},
	{"esta es una respuesta automática", phAuto, 2},
	{"estoy fuera de la oficina", phAuto, 1},
	{"questa è una risposta automatica", phAuto, 2},
	{"sono fuori ufficio", phAuto, 1},
	{"dit is een automatisch antwoord", phAuto, 2},
	{"ik ben afwezig", phAuto, 1},
	{"esta é uma resposta automática", phAuto, 2},
	{"estou fora do escritório", phAuto, 1},
	{"detta är ett automatiskt svar", phAuto, 2},
	{"dette er et automatisk svar", phAuto, 2},
	{"tämä on automaattinen vastaus", phAuto, 2},
	{"to jest automatyczna odpowiedź", phAuto, 2},
	{"jestem poza biurem", phAuto, 1},
	{"toto je automatická odpověď", phAuto, 2},
	{"ez egy automatikus válasz", phAuto, 2},
	{"это автоматический ответ", phAuto, 2},
	{"bu otomatik bir yanıttır", phAuto, 2},
	{"bu bir otomatik yanıttır", phAuto, 2},
	{"αυτή είναι μια αυτόματη απάντηση", phAuto, 2},
	{"これは自動返信です", phAuto, 2},
	{"このメールは自動返信", phAuto, 2},
	{"这是一封自动回复邮件", phAuto, 2},
	{"这是自动回复", phAuto, 2},
	{"此为自动回复", phAuto, 2},
	{"자동 응답 메시지입니다", phAuto, 2},
	{"acesta este un răspuns automat", phAuto, 2},
	{"ovo je automatski odgovor", phAuto, 2},
	{"це автоматична відповідь", phAuto, 2},
	{"aquesta és una resposta automàtica", phAuto, 2},
}

// The compiled forms of bodyPhrases: one automaton for the phrases in
// ASCII, run on all text, and one for the others, run only on lines with
// non-ASCII bytes. Split, each table stays small enough for the caches.
var (
	asciiMatcher, asciiIndex = compilePhrases(true)
	uniMatcher, uniIndex     = compilePhrases(false)
)

// compilePhrases compiles the ASCII (or the other) phrases and returns the
// matcher and the index of each of its patterns in bodyPhrases.
func compilePhrases(ascii bool) (*matcher, []int) {
	var texts []string
	var index []int
	for i, p := range bodyPhrases {
		isASCII := true
		for j := 0; j < len(p.text); j++ {
			if p.text[j] >= 0x80 {
				isASCII = false
				break
			}
		}
		if isASCII == ascii {
			texts = append(texts, p.text)
			index = append(index, i)
		}
	}
	if len(bodyPhrases) > maxPhrases {
		panic("classify: too many body phrases")
	}
	return newMatcher(texts), index
}

// daemonLocalParts are the local parts that MTAs send reports from
// (RFC 5321 4.5.1 postmaster; the de-facto MAILER-DAEMON).
var daemonLocalParts = map[string]bool{
	"mailer-daemon": true, "mailer_daemon": true, "mailerdaemon": true, "mail-daemon": true,
	"maildaemon": true, "postmaster": true, "mdaemon": true, "mail.daemon": true,
	"mailer-daemon-noreply": true, "bounce-notification": true, "mailerdaemon-noreply": true,
	"post_master": true, "post-master": true,
}

// daemonNames are display names (lower case) of report senders.
var daemonNames = []string{
	"mail delivery system", "mail delivery subsystem", "mail delivery service", "mail delivery",
	"mailer-daemon", "mailer daemon", "mail administrator", "system administrator", "microsoft outlook",
	"microsoft exchange", "mail system", "postmaster", "internet mail delivery", "delivery subsystem",
	"mail router", "email delivery system", "mail transport system", "sistema de entrega de correo",
	"système de distribution du courrier", "e-mail-zustellsystem", "mail delivery error",
}
