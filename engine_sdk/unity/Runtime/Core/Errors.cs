using System;

namespace EntityBridge
{
    /// <summary>A request ended with status `error`: carries the protocol's code and message
    /// (e.g. unknown_character, "no character 'ghost'; configured: ava, bard").</summary>
    public sealed class BridgeException : Exception
    {
        public readonly string Code;
        public readonly string BridgeMessage;
        public readonly BridgeEvent Reply;

        public BridgeException(BridgeEvent reply)
            : base(reply.Type + " " + reply.Id + ": " + reply.ErrorCode + ": " + reply.ErrorMessage)
        {
            Reply = reply;
            Code = reply.ErrorCode;
            BridgeMessage = reply.ErrorMessage;
        }
    }

    /// <summary>The connection closed (or could not be opened) while a request was waiting.</summary>
    public sealed class ConnectionLostException : Exception
    {
        public ConnectionLostException(string message, Exception inner = null) : base(message, inner) { }
    }
}
