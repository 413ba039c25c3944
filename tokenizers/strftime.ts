/** Python's strftime for the directives chat templates use (strftime_now). */
const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

const pad = (n: number, width = 2) => String(n).padStart(width, '0');

export function strftime(format: string, d: Date): string {
  const directives: Record<string, () => string> = {
    a: () => DAYS[d.getDay()].slice(0, 3),
    A: () => DAYS[d.getDay()],
    b: () => MONTHS[d.getMonth()].slice(0, 3),
    B: () => MONTHS[d.getMonth()],
    d: () => pad(d.getDate()),
    m: () => pad(d.getMonth() + 1),
    y: () => pad(d.getFullYear() % 100),
    Y: () => String(d.getFullYear()),
    H: () => pad(d.getHours()),
    I: () => pad(((d.getHours() + 11) % 12) + 1),
    p: () => (d.getHours() < 12 ? 'AM' : 'PM'),
    M: () => pad(d.getMinutes()),
    S: () => pad(d.getSeconds()),
    j: () => pad(Math.floor((Date.UTC(d.getFullYear(), d.getMonth(), d.getDate()) - Date.UTC(d.getFullYear(), 0, 0)) / 86400000), 3),
    '%': () => '%',
  };
  return format.replace(/%([a-zA-Z%])/g, (m, c: string) => (directives[c] ? directives[c]() : m));
}
