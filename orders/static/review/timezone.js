// The reader's time zone, for pages the server renders with times in it (admin): kept in the
// `tz` cookie, which orders.middleware.ReaderTimeZoneMiddleware reads. A page rendered before the
// cookie existed says its times are in UTC; the next one is in the reader's zone.
(function () {
  "use strict";
  let zone;
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { return; }
  // IANA names are cookie-safe as they are ("America/New_York"); anything else is left out.
  if (!zone || !/^[A-Za-z0-9_+\-\/]{1,64}$/.test(zone) || document.cookie.split("; ").indexOf("tz=" + zone) !== -1) return;
  const secure = location.protocol === "https:" ? "; Secure" : "";
  document.cookie = "tz=" + zone + "; Path=/; Max-Age=31536000; SameSite=Lax" + secure;
})();
