using System.Runtime.CompilerServices;

// The bench drives the client's receive path without a socket (BridgeClient.ReceiveFrame).
[assembly: InternalsVisibleTo("EntityBridge.Bench")]
