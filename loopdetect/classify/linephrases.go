package classify

// This file holds the immutable tables lines.go reads a line of body text
// against: the labels of "Key: value" lines (the header blocks mail clients
// print above a forwarded or quoted message, and the DSN fields) and the
// separator lines above a forwarded or returned message. Like phrases.go,
// they describe formats, never particular messages; lower case.

// Roles of "Key:" lines in body text.
type lineRole uint8

const (
	roleNone lineRole = iota
	roleFrom
	roleDate // "Sent:" / "Date:"
	roleTo
	roleCc
	roleSubject
	roleHeader // any other RFC 5322 header field of a returned message
	roleMessageID
	roleSent // Outlook's "Sent:" in any language (also a date)
	// roleFromFinnish is Finnish "Lähettäjä:", whose clients write "VS:"
	// for a reply where Danish and Norwegian ones mean a forward.
	roleFromFinnish
	// RFC 3464 2.2 and 2.3 fields.
	roleDSNFinalRecipient
	roleDSNOriginalRecipient
	roleDSNAction
	roleDSNStatus
	roleDSNDiagnostic
	roleDSNReportingMTA
	roleDSNRemoteMTA
	roleDSNArrivalDate
	roleDSNOther
	roleFailedRecipients // Exim's X-Failed-Recipients
	roleContentType
)

// lineRoles maps the lower-cased key of a "Key: value" line in body text to
// its role. The header labels are those mail clients print above a
// forwarded or quoted message, in the languages of Outlook, Gmail, Apple
// Mail and Thunderbird.
var lineRoles = func() map[string]lineRole {
	m := map[string]lineRole{}
	add := func(r lineRole, keys ...string) {
		for _, k := range keys {
			m[k] = r
		}
	}
	add(roleFrom, "from", "von", "de", "da", "van", "från", "fra", "od", "от", "发件人", "寄件者", "寄件人",
		"差出人", "kimden", "από", "feladó", "odesílatel", "remetente", "expéditeur",
		"보낸 사람", "보낸사람", "nadawca", "mittente", "afzender", "absender", "frá", "від",
		"šalje", "pošiljatelj", "de la", "expeditor", "siuntėjas", "gửi từ",
		// Vietnamese, Indonesian/Malay, Hebrew, Arabic, Thai, Estonian,
		// Lithuanian, Serbian, Slovenian, Bulgarian, Galician/Basque.
		"từ", "dari", "daripada", "מאת", "من", "จาก", "saatja", "nuo", "од", "igorlea")
	add(roleFromFinnish, "lähettäjä")
	add(roleSent, "sent", "gesendet", "envoyé", "enviado", "inviato", "verzonden", "skickat", "sendt",
		"wysłano", "отправлено", "发送时间", "傳送時間", "寄件日期", "送信日時", "gönderildi",
		"αποστολή", "lähetetty", "elküldve", "odesláno", "보낸 날짜", "sendt:", "enviada em", "enviado el",
		"poslano", "trimis", "надіслано", "enviat el", "enviat", "στάλθηκε", "odoslané", "išsiųsta", "nosūtīts",
		"đã gửi", "dikirim", "terkirim", "נשלח", "تاريخ الإرسال", "ส่ง", "saadetud", "изпратено", "послато", "poslano dne")
	add(roleDate, "date", "datum", "fecha", "data", "dato", "дата", "日期", "日付", "tarih",
		"ημερομηνία", "päivämäärä", "dátum", "날짜", "päiväys")
	add(roleTo, "to", "an", "à", "a", "para", "aan", "till", "til", "do", "кому", "收件人", "收件者", "宛先",
		"kime", "προς", "vastaanottaja", "címzett", "komu", "받는 사람", "받는사람", "destinataire", "per",
		"empfänger", "pour", "prima", "către", "per a", "primatelj", "kam", "adresát", "gavėjas",
		"đến", "kepada", "אל", "إلى", "ถึง", "saaja", "до", "prejemnik")
	add(roleCc, "cc", "kopie", "copie à", "copia", "kopia", "копия", "抄送", "副本", "bilgi", "κοιν",
		"kopio", "másolat", "kopi", "참조")
	add(roleSubject, "subject", "betreff", "objet", "asunto", "oggetto", "onderwerp", "ämne", "emne",
		"temat", "тема", "主题", "主旨", "件名", "konu", "θέμα", "aihe", "tárgy", "předmět", "assunto",
		"제목", "efni", "tema", "predmet", "subiect", "tēma",
		"chủ đề", "subjek", "perihal", "נושא", "الموضوع", "เรื่อง", "teema", "zadeva", "относно", "naslov", "gaia")
	add(roleMessageID, "message-id")
	add(roleHeader, "return-path", "received", "reply-to", "mime-version", "x-mailer", "in-reply-to",
		"references", "content-transfer-encoding", "delivered-to", "x-original-to", "dkim-signature",
		"user-agent", "thread-topic", "thread-index", "importance", "x-priority")
	add(roleContentType, "content-type")
	add(roleDSNFinalRecipient, "final-recipient")
	add(roleDSNOriginalRecipient, "original-recipient")
	add(roleDSNAction, "action")
	add(roleDSNStatus, "status")
	add(roleDSNDiagnostic, "diagnostic-code")
	add(roleDSNReportingMTA, "reporting-mta")
	add(roleDSNRemoteMTA, "remote-mta")
	add(roleDSNArrivalDate, "arrival-date")
	add(roleDSNOther, "last-attempt-date", "received-from-mta", "x-postfix-queue-id", "x-postfix-sender",
		"original-envelope-id", "x-actual-recipient", "will-retry-until", "dsn-gateway", "x-display-name",
		"x-supplementary-info")
	add(roleFailedRecipients, "x-failed-recipients")
	return m
}()

type sepKind uint8

const (
	sepNone sepKind = iota
	sepForward
	sepReturned
)

// separators are the lines, stripped of the dashes, underscores and colons
// around them and lower-cased, that mail clients put above a forwarded
// message (and a few MTAs above a returned one).
var separators = func() map[string]sepKind {
	m := map[string]sepKind{}
	fwd := []string{
		// Outlook ("-----Original Message-----") in its languages.
		"original message", "ursprüngliche nachricht", "message d'origine", "mensaje original",
		"messaggio originale", "oorspronkelijk bericht", "originalmeddelande", "ursprungligt meddelande",
		"oprindelig meddelelse", "opprinnelig melding", "alkuperäinen viesti", "wiadomość oryginalna",
		"eredeti üzenet", "původní zpráva", "pôvodná správa", "mensagem original", "исходное сообщение",
		"orijinal ileti", "αρχικό μήνυμα", "原始邮件", "原始郵件", "元のメッセージ", "원본 메시지",
		"izvirno sporočilo", "izvorna poruka", "mesaj original", "оригинално съобщение",
		"вихідне повідомлення", "upprunaleg skilaboð", "originalnachricht", "message original",
		// Gmail ("---------- Forwarded message ---------") and Thunderbird
		// ("-------- Forwarded Message --------").
		"forwarded message", "weitergeleitete nachricht", "message transféré", "mensaje reenviado",
		"messaggio inoltrato", "doorgestuurd bericht", "mensagem encaminhada", "vidarebefordrat meddelande",
		"videresendt meddelelse", "videresendt melding", "välitetty viesti", "wiadomość przekazana dalej",
		"przekazana wiadomość", "továbbított üzenet", "přeposlaná zpráva", "пересылаемое сообщение",
		"переслане повідомлення", "iletilen ileti", "iletilmiş ileti", "yönlendirilmiş ileti", "προωθημένο μήνυμα", "转发的邮件",
		"已转发邮件", "转发的消息", "轉寄的郵件", "轉寄郵件", "転送されたメッセージ", "転送メッセージ", "전달된 메시지", "전달된 메일", "mesaj redirecționat",
		"forwarded e-mail", "forwarded mail", "forward message",
		// Apple Mail ("Begin forwarded message:").
		"begin forwarded message", "anfang der weitergeleiteten nachricht", "beginn der weitergeleiteten nachricht",
		"début du message réexpédié", "début du message transféré", "inicio del mensaje reenviado",
		"comienzo del mensaje reenviado", "inizio messaggio inoltrato", "begin doorgestuurd bericht",
		"início da mensagem reencaminhada", "início da mensagem encaminhada", "vidarebefordrat brev",
		"videresendt brev", "välitetty viesti alkaa", "początek przekazywanej wiadomości",
		"začátek přeposlané zprávy", "továbbított levél kezdete", "начало переадресованного сообщения",
		"iletilen ileti başlangıcı", "αρχή προωθημένου μηνύματος", "转发的邮件开始", "轉寄的郵件開始",
		"転送されたメッセージの開始", "전달된 메시지 시작",
	}
	for _, s := range fwd {
		m[s] = sepForward
	}
	for _, s := range []string{
		"original message follows", "message header follows", "original message header",
		"returned message", "the original message", "undelivered message headers",
		"original message headers", "headers of the original message", "original mail as follows",
	} {
		m[s] = sepReturned
	}
	return m
}()

// forwardSeparatorPrefixes catch separators that carry a name, such as
// mutt's "----- Forwarded message from Alice <a@example.org> -----".
var forwardSeparatorPrefixes = []string{
	"forwarded message from", "forwarded message -", "weitergeleitete nachricht von", "start of forwarded message",
}
