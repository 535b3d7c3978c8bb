using System;

namespace EntityBridge
{
    /// <summary>A frame could not be decoded (or a value cannot be encoded). `Category` is one of
    /// truncated, reserved, ext, depth, length, key, trailing, not_map, type, utf8, syntax: what a log or a test
    /// can match on without parsing the message.</summary>
    public sealed class EepCodecException : FormatException
    {
        public readonly string Category;
        public readonly int Offset;

        public EepCodecException(string category, string message, int offset)
            : base(message + " (at byte " + offset + ")")
        {
            Category = category;
            Offset = offset;
        }
    }
}
