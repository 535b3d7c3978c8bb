#include "BridgeSpeechSoundWave.h"

#include "entitybridge/speech_buffer.h"

void UBridgeSpeechSoundWave::SetBuffer(std::shared_ptr<eb::SpeechBuffer> InBuffer)
{
	SetSampleRate(InBuffer ? InBuffer->output_rate() : 48000);
	NumChannels = 1;
	Duration = INDEFINITELY_LOOPING_DURATION;
	bLooping = false;
	std::atomic_store(&Buffer, MoveTemp(InBuffer));
}

int32 UBridgeSpeechSoundWave::OnGeneratePCMAudio(TArray<uint8>& OutAudio, int32 NumSamples)
{
	std::shared_ptr<eb::SpeechBuffer> Local = std::atomic_load(&Buffer);
	OutAudio.SetNumZeroed(NumSamples * sizeof(float));
	if (Local)
	{
		Local->pull(reinterpret_cast<float*>(OutAudio.GetData()), static_cast<size_t>(NumSamples));
	}
	// Always a full block: silence keeps the voice playing between segments.
	return NumSamples;
}
