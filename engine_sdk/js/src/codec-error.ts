/** A frame that cannot be decoded. `category`: truncated, length, reserved, ext, depth, utf8, key, trailing, not_map, type. */
export class FrameError extends Error {
  constructor(
    readonly category: string,
    message: string,
  ) {
    super(message);
    this.name = "FrameError";
  }
}
