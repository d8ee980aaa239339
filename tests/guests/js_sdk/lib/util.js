// A relative import, to prove the guest's own modules are bundled.
export function shout(text) {
  return text.toUpperCase() + "!";
}
