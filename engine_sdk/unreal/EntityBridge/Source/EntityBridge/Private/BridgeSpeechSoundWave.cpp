#include "BridgeSpeechSoundWave.h"

#include "Misc/ScopeLock.h"

#include "entitybridge/speech_buffer.h"

void UBridgeSpeechSoundWave::SetBuffer(std::shared_ptr<eb::SpeechBuffer> InBuffer)
{
	SetSampleRate(InBuffer ? InBuffer->output_rate() : 48000);
	NumChannels = 1;
	Duration = INDEFINITELY_LOOPING_DURATION;
	bLooping = false;
	FScopeLock Lock(&BufferLock);
	Buffer = MoveTemp(InBuffer);
}

int32 UBridgeSpeechSoundWave::OnGeneratePCMAudio(TArray<uint8>& OutAudio, int32 NumSamples)
{
	OutAudio.SetNumZeroed(NumSamples * sizeof(float));
	FScopeLock Lock(&BufferLock);
	if (Buffer)
	{
		Buffer->pull(reinterpret_cast<float*>(OutAudio.GetData()), static_cast<size_t>(NumSamples));
	}
	// Always a full block: silence keeps the voice playing between segments.
	return NumSamples;
}
