package classify

// This file holds the immutable tables parseSubject (subject.go) matches a
// subject against: the prefixes clients stack on replies and forwards, the
// subjects MTAs give their reports and the markers of auto-replies. Like
// phrases.go, they describe formats, never particular messages.

// Subject prefixes (RFC 5322 3.6.5 only names "Re:"; everything else is
// mail-client custom). Lower case, without the colon.

// forwardPrefixes are the prefixes clients put on a forwarded message:
// English and most clients (FW, Fwd), German (WG), French (TR), Spanish (RV),
// Italian (I, Inoltro), Portuguese (ENC), Dutch (Doorst), Danish and
// Norwegian (VS), Swedish (VB), Finnish (VL), Icelandic (FS), Polish (PD),
// Czech (PŘ), Hungarian (Tov), Greek (ΠΡΘ), Turkish (İLT), Latvian and
// Lithuanian (PRS), Slovenian (Posl), Russian (Пересл), Chinese (转发,
// 轉寄), Japanese (転送), Korean (전달).
var forwardPrefixes = map[string]bool{
	"fw": true, "fwd": true, "fwrd": true, "wg": true, "wtr": true, "tr": true, "rv": true,
	"i": true, "inoltro": true, "enc": true, "doorst": true, "vs": true, "vb": true, "vl": true,
	"fs": true, "pd": true, "př": true, "tov": true, "továbbítás": true, "πρθ": true, "προώθηση": true,
	"i̇lt": true, "ilt": true, "prs": true, "posl": true, "пересл": true, "переслано": true,
	"转发": true, "轉寄": true, "轉發": true, "転送": true, "전달": true, "weitergeleitet": true,
	"doorgestuurd": true, "videresendt": true, "trans": true,
	// Vietnamese, Indonesian, Hebrew, Arabic, Thai, Estonian, Latvian,
	// Lithuanian, Serbian, Bulgarian.
	"ct": true, "teruskan": true, "הועבר": true, "ส่งต่อ": true,
	"edasi": true, "pārsūtīt": true, "persiųsti": true, "прослеђено": true, "препратено": true, "препр": true,
}

// replyPrefixes are reply markers that may be stacked with forward
// prefixes: Re, AW (German), SV (Scandinavian), Antw (Dutch), Odp (Polish,
// Czech), R and Rif (Italian), Res (Portuguese), RE/Ref/Réf (French), YNT
// (Turkish), ΑΠ and ΣΧΕΤ (Greek), Vá/Válasz (Hungarian), Atb and Ats
// (Latvian, Lithuanian), Odg (Croatian), TL (Vietnamese), 答复/回复/回覆
// (Chinese), 返信 (Japanese), 회신/답장 (Korean).
var replyPrefixes = map[string]bool{
	"re": true, "aw": true, "sv": true, "antw": true, "antwort": true, "odp": true, "r": true,
	"rif": true, "res": true, "ref": true, "réf": true, "ynt": true, "απ": true, "σχετ": true,
	"vá": true, "válasz": true, "atb": true, "ats": true, "odg": true, "tl": true, "答复": true,
	"回复": true, "回覆": true, "返信": true, "회신": true, "답장": true, "отв": true, "ответ": true,
}

// ndrSubjects are the subjects MTAs give their reports, matched at the start
// of the subject after any prefixes and [tags]. English first (Postfix,
// Exim, Sendmail, qmail, Exchange, Gmail, Domino, ...), then Exchange's and
// other servers' localized "Undeliverable:".
var ndrSubjects = []phrase{
	{"undelivered mail returned to sender", phFailure, 2},
	{"undeliverable", phFailure, 2},
	{"undelivered mail", phFailure, 2},
	{"undelivered message", phFailure, 2},
	{"undelivered", phFailure, 1},
	{"mail delivery failed", phFailure, 2},
	{"mail delivery failure", phFailure, 2},
	{"mail delivery problem", phFailure, 2},
	{"mail delivery error", phFailure, 2},
	{"mail delivery warning", phDelay, 2},
	{"mail delivery delayed", phDelay, 2},
	{"mail delivery status", phFailure, 2},
	{"mail delivery status notification (delay)", phDelay, 2},
	{"delivery status notification (failure)", phFailure, 2},
	{"delivery status notification (delay)", phDelay, 2},
	{"delivery status notification (mail delivery delayed)", phDelay, 2},
	{"delivery status notification (success)", phSuccess, 2},
	{"delivery status notification", phFailure, 2},
	{"delivery status", phFailure, 1},
	{"delivery notification: delivery has failed", phFailure, 2},
	{"delivery notification: delivery has been delayed", phDelay, 2},
	{"delivery notification", phFailure, 1},
	{"delivery report (failure)", phFailure, 2},
	{"delivery report", phFailure, 1},
	{"delivery failure", phFailure, 2},
	{"delivery failed", phFailure, 2},
	{"delivery has failed", phFailure, 2},
	{"delivery problem", phFailure, 2},
	{"delivered:", phSuccess, 2},
	{"relayed:", phSuccess, 2},
	{"delayed:", phDelay, 2},
	{"delayed mail", phDelay, 2},
	{"message delayed", phDelay, 2},
	{"delivery delayed", phDelay, 2},
	{"warning: could not send message", phDelay, 2},
	{"warning: could not send mail", phDelay, 2},
	{"warning--could not send", phDelay, 2},
	{"warning: message has not yet been delivered", phDelay, 2},
	{"failure notice", phFailure, 2},
	{"failure delivery", phFailure, 2},
	{"failed delivery", phFailure, 2},
	{"failed mail", phFailure, 2},
	{"mail failure", phFailure, 2},
	{"mail failed", phFailure, 2},
	{"returned mail", phFailure, 2},
	{"returned message", phFailure, 2},
	{"mail returned", phFailure, 2},
	{"message not delivered", phFailure, 2},
	{"mail not delivered", phFailure, 2},
	{"message delivery failed", phFailure, 2},
	{"message delivery has failed", phFailure, 2},
	{"message delivery failure", phFailure, 2},
	{"message could not be delivered", phFailure, 2},
	{"mail could not be delivered", phFailure, 2},
	{"your message could not be delivered", phFailure, 2},
	{"sorry, your message could not be delivered", phFailure, 2},
	{"nondeliverable", phFailure, 2},
	{"non-deliverable", phFailure, 2},
	{"non delivery", phFailure, 2},
	{"non-delivery", phFailure, 2},
	{"there was an error sending your mail", phFailure, 2},
	{"mail system error", phFailure, 2},
	{"postmaster notify", phFailure, 2},
	{"email delivery failure", phFailure, 2},
	{"e-mail delivery failure", phFailure, 2},
	{"permanent delivery failure", phFailure, 2},
	{"email bounce notification", phFailure, 2},
	{"message bounced", phFailure, 2},
	{"bounced mail", phFailure, 2},
	{"mail error", phFailure, 1},
	{"message status - undeliverable", phFailure, 2},
	{"notice: mail delivery status", phFailure, 2},
	{"could not send message for past", phDelay, 2},
	// Localized (Exchange/Outlook NDR subjects and other servers).
	{"unzustellbar", phFailure, 2},
	{"nicht zustellbar", phFailure, 2},
	{"zustellung fehlgeschlagen", phFailure, 2},
	{"non remis", phFailure, 2},
	{"non distribuable", phFailure, 2},
	{"échec de la remise", phFailure, 2},
	{"no se puede entregar", phFailure, 2},
	{"no entregado", phFailure, 2},
	{"non recapitabile", phFailure, 2},
	{"mancato recapito", phFailure, 2},
	{"onbestelbaar", phFailure, 2},
	{"niet bezorgd", phFailure, 2},
	{"não é possível entregar", phFailure, 2},
	{"não foi possível entregar", phFailure, 2},
	{"mensagem não entregue", phFailure, 2},
	{"não entregue", phFailure, 2},
	{"olevererbart", phFailure, 2},
	{"kan inte levereras", phFailure, 2},
	{"ikke leveret", phFailure, 2},
	{"ikke levert", phFailure, 2},
	{"kan ikke leveres", phFailure, 2},
	{"ei voitu toimittaa", phFailure, 2},
	{"toimitus epäonnistui", phFailure, 2},
	{"nie można dostarczyć", phFailure, 2},
	{"niedostarczalna", phFailure, 2},
	{"kézbesíthetetlen", phFailure, 2},
	{"nedoručitelné", phFailure, 2},
	{"nelze doručit", phFailure, 2},
	{"nedoručiteľné", phFailure, 2},
	{"nelivrabil", phFailure, 2},
	{"ni mogoče dostaviti", phFailure, 2},
	{"neisporučivo", phFailure, 2},
	{"не удается доставить", phFailure, 2},
	{"не удалось доставить", phFailure, 2},
	{"не доставлено", phFailure, 2},
	{"недоставленное сообщение", phFailure, 2},
	{"ваше сообщение не доставлено", phFailure, 2},
	{"не вдалося доставити", phFailure, 2},
	{"не може да бъде доставено", phFailure, 2},
	{"teslim edilemedi", phFailure, 2},
	{"teslim edilemiyor", phFailure, 2},
	{"iletilemedi", phFailure, 2},
	{"δεν είναι δυνατή η παράδοση", phFailure, 2},
	{"δεν ήταν δυνατή η παράδοση", phFailure, 2},
	{"配信不能", phFailure, 2},
	{"配信できません", phFailure, 2},
	{"メッセージを配信できません", phFailure, 2},
	{"メール送信エラー", phFailure, 2},
	{"メールエラー通知", phFailure, 2},
	{"無法傳遞", phFailure, 2},
	{"無法送達", phFailure, 2},
	{"无法送达", phFailure, 2},
	{"无法投递", phFailure, 2},
	{"退信", phFailure, 2},
	{"邮件投递失败", phFailure, 2},
	{"배달 못함", phFailure, 2},
	{"배달되지 않음", phFailure, 2},
	{"전달할 수 없음", phFailure, 2},
	{"no es pot lliurar", phFailure, 2},
	{"nepristatoma", phFailure, 2},
	{"nepiegādājams", phFailure, 2},
	{"tidak terkirim", phFailure, 2},
	{"không thể chuyển phát", phFailure, 2},
}

// ndrSubjectContains are report subjects that some MTAs put after their own
// text ("Mycom: Mail Delivery Error - x", "Warning: message X delayed 24
// hours"); they are looked for anywhere in an unprefixed subject.
var ndrSubjectContains = []phrase{
	{"undelivered mail returned to sender", phFailure, 2},
	{"mail delivery error", phFailure, 2},
	{"email delivery failure", phFailure, 2},
	{"mail delivery failed", phFailure, 2},
	{"could not send message for past", phDelay, 2},
	{"could not send mail for past", phDelay, 2},
	{"delivery status notification", phFailure, 2},
}

// autoReplySubjects are what out-of-office and vacation responders put at
// the start of the subject, in the languages of Outlook/Exchange, Gmail,
// Lotus Notes, Zimbra and the Sieve vacation extension (RFC 5230).
var autoReplySubjects = []string{
	"automatic reply", "auto reply", "auto-reply", "autoreply", "auto response", "auto-response",
	"autoresponse", "automatic response", "automated response", "automatic message", "auto-antwort",
	"out of office autoreply", "out of office auto reply", "out of office reply", "out of office",
	"out of the office", "out-of-office", "ooo", "vacation reply", "vacation autoreply", "away from my mail",
	"abwesenheitsnotiz", "automatische antwort", "abwesenheit", "réponse automatique",
	"réponse automatique d'absence du bureau", "absent du bureau", "respuesta automática",
	"respuesta automatica", "fuera de la oficina", "risposta automatica", "fuori sede",
	"automatisch antwoord", "afwezigheidsbericht", "resposta automática", "resposta automatica",
	"automatiskt svar", "automatisk svar", "automatisk besked", "automaattinen vastaus",
	"automatyczna odpowiedź", "automatyczna odpowiedz", "automatická odpověď", "automatikus válasz",
	"автоматический ответ", "автоответ", "otomatik yanıt", "otomatik cevap", "αυτόματη απάντηση",
	"自动回复", "自動回覆", "自動返信", "自動応答", "자동 회신", "자동 응답", "răspuns automat",
	"samodejni odgovor", "automatski odgovor", "automatická odpoveď",
	// Exchange's "Automatic reply:" in further languages.
	"автоматична відповідь", "resposta automàtica", "automātiskā atbilde", "automatinis atsakymas",
	"automaatvastus", "автоматичен отговор", "аутоматски одговор", "автоматски одговор", "תשובה אוטומטית",
	"رد تلقائي", "balasan otomatis", "balasan automatik", "trả lời tự động", "ตอบกลับอัตโนมัติ",
	"sjálfvirkt svar", "erantzun automatikoa", "automatische antwort von",
	"automatic reply from", "auto-response", "autoresponder", "vacation auto-reply", "vacation response",
	"abwesenheitsmeldung", "abwesenheitsnotiz", "absence du bureau", "mensaje de ausencia",
	// Weak: people write these too (see autoReplyWeak).
	"away", "absent", "on vacation", "on leave", "out of office until", "request received",
	"ticket received", "thanks for your inquiry", "thank you for your inquiry", "thank you for contacting us",
	"we have received your request", "we've received your request", "sender verification request",
	"please confirm your message", "message awaiting confirmation", "thank you for your e-mail",
	"thank you for your email", "thank you for your message", "thanks for your email", "thanks for your message",
}

// oofColon are the weak markers that, followed by a colon and the subject
// answered, are Outlook's and Notes' responders.
var oofColon = map[string]bool{
	"out of office": true, "out of the office": true, "out-of-office": true, "abwesenheit": true,
	"absent du bureau": true, "fuera de la oficina": true, "fuori sede": true,
}

// autoReplyWeak are the autoReplySubjects that people write too ("Out of
// office next week" is matched only with a delimiter, but "Away: back on
// Monday" and "Request received" from a web form are plain mail): they
// make an auto-reply only with another sign (see autoReplyEvidence).
var autoReplyWeak = map[string]bool{
	"out of office": true, "out of the office": true, "out-of-office": true, "ooo": true, "away": true,
	"absent": true, "on vacation": true, "on leave": true, "out of office until": true, "away from my mail": true,
	"abwesenheit": true, "absent du bureau": true, "fuera de la oficina": true, "fuori sede": true,
	"request received": true, "ticket received": true, "thanks for your inquiry": true,
	"thank you for your inquiry": true, "thank you for contacting us": true, "we have received your request": true,
	"we've received your request": true, "sender verification request": true, "please confirm your message": true,
	"message awaiting confirmation": true, "thank you for your e-mail": true, "thank you for your email": true,
	"thank you for your message": true, "thanks for your email": true, "thanks for your message": true,
}

// autoReplySuffixes are markers some responders append ("Re: x (Automatic
// Response)" from AOL, Lotus Notes' "... is out of the office").
var autoReplySuffixes = []string{
	"(automatic response)", "(auto-reply)", "(auto reply)", "(autoreply)", "(out of office)",
	"is out of the office", "est absent(e) du bureau", "ist nicht im büro",
}

// failureWords name a failure or an error in a subject, in the languages of
// the forward prefixes above. Alone they say nothing (people write "error"
// in subjects); they count only in a header block from a report sender.
var failureWords = []string{
	"fail", "error", "undeliver", "undelivered", "not delivered", "returned", "bounce", "rejected", "delay",
	"erreur", "échec", "non remis", "non distribu", "fehler", "zustell", "fallo", "no entregado", "errore",
	"non recapit", "fout", "onbestel", "erro", "não entreg", "fel", "olevererbar", "ikke lever", "virhe",
	"błąd", "niedostarcz", "chyba", "nedoruč", "hiba", "kézbesít", "ошибка", "не доставлен", "hata",
	"teslim", "σφάλμα", "eroare", "greška", "napaka", "помилка", "エラー", "不達", "配信", "错误", "錯誤",
	"失败", "失敗", "退信", "退回", "오류", "실패", "반송",
}
