"""Email through SMTP, upgraded with STARTTLS (aiosmtplib). The channel's url is
`smtp://user@host:port` (`smtps://` for TLS from the start); its secret is the password."""

from __future__ import annotations

from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

import aiosmtplib

from notify.delivery import ANSWER_CHARS, Answer, no_answer
from notify.transports import Outgoing, secret_of
from notify.transports.http import TIMEOUT_S


def compose(message: Outgoing) -> EmailMessage:
    settings = message.channel.email
    assert settings is not None
    mail = EmailMessage()
    mail["Subject"] = message.title
    mail["From"] = settings.sender
    mail["To"] = ", ".join(settings.to)
    mail["Message-ID"] = f"<{message.items[0].idempotency_key}@shaobing>"
    mail.set_content(message.text)
    return mail


class Smtp:
    async def send(self, message: Outgoing) -> Answer:
        channel = message.channel
        assert channel.email is not None
        url = urlsplit(channel.url)
        tls = url.scheme == "smtps"
        try:
            reply = await aiosmtplib.send(
                compose(message),
                hostname=url.hostname,
                port=url.port or (465 if tls else 587),
                username=unquote(url.username) if url.username else None,
                password=secret_of(channel) or None,
                use_tls=tls,
                start_tls=channel.email.starttls and not tls,
                timeout=TIMEOUT_S,
            )
        except aiosmtplib.SMTPResponseException as exc:
            transient = 400 <= exc.code < 500  # SMTP's own "try again later"
            return Answer("retry" if transient else "failed", exc.code, exc.message[:ANSWER_CHARS])
        except (aiosmtplib.SMTPException, OSError) as exc:
            return no_answer(exc)
        refused, text = reply
        if refused:
            return Answer("failed", 550, f"refused: {', '.join(sorted(refused))}"[:ANSWER_CHARS])
        return Answer("delivered", 250, text[:ANSWER_CHARS])
