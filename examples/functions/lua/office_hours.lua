-- Office hours: write operations only on weekdays between 08:00 and 18:00 in the
-- company's time zone (a fixed UTC offset here; `utc_offset` hours). Reads are always
-- allowed. The answer may be cached only until the next boundary could change it.
local utc_offset = 1          -- CET; use 2 during summer time
local open_hour, close_hour = 8, 18

local writes = { POST = true, PUT = true, PATCH = true, DELETE = true }

return function(request, identity, ctx)
  if not writes[request.method] then
    return { allow = true }
  end
  local now = time.utc(time.now() + utc_offset * 3600)
  local weekday = now.wday >= 2 and now.wday <= 6          -- 1 = Sunday
  if weekday and now.hour >= open_hour and now.hour < close_hour then
    return { allow = true, ttl = 60 }
  end
  return { allow = false, status = 403, reason = "outside_office_hours", ttl = 60 }
end
