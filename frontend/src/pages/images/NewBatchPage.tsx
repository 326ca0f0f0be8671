import { useCallback, useState, type FormEvent } from 'react';
import { Link, useNavigate } from 'react-router';
import {
  ActionIcon,
  Anchor,
  Button,
  Card,
  Checkbox,
  Group,
  List,
  NativeSelect,
  NumberInput,
  SegmentedControl,
  SimpleGrid,
  Slider,
  Stack,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import {
  createCsvBatch,
  createUploadBatch,
  DEFAULT_QUALITY,
  MAX_DIMENSION,
  type OutputFormat,
  type Operations,
} from '../../api/images';
import { formatBytes } from '../../components/format';
import { usePageTitle } from '../../hooks/usePageTitle';
import { useSubmit } from '../../hooks/useSubmit';
import { FileDrop } from './FileDrop';
import { SubmitError } from './SubmitError';

type Source = 'csv' | 'upload';

const MAX_UPLOAD_FILES = 100;
const IMAGE_TYPES = 'image/jpeg,image/png,image/webp,image/gif,image/avif,image/tiff';

const FORMAT_CHOICES: { value: OutputFormat; label: string }[] = [
  { value: 'keep', label: 'Keep each image’s format' },
  { value: 'jpeg', label: 'JPEG' },
  { value: 'png', label: 'PNG (lossless)' },
  { value: 'webp', label: 'WebP' },
  { value: 'avif', label: 'AVIF' },
];

function fileKey(file: File): string {
  return `${file.name}\u0000${file.size}\u0000${file.lastModified}`;
}

function whole(value: string | number): number | undefined {
  const number = typeof value === 'number' ? value : Number.parseInt(value, 10);
  return Number.isFinite(number) && number > 0 ? Math.trunc(number) : undefined;
}

export default function NewBatchPage() {
  usePageTitle('New image batch');
  const navigate = useNavigate();
  const [source, setSource] = useState<Source>('csv');
  const [csv, setCsv] = useState<File | null>(null);
  const [images, setImages] = useState<File[]>([]);
  // As typed (a cleared field is ''), so editing never snaps back to a default mid-way.
  const [quality, setQuality] = useState<string | number>(DEFAULT_QUALITY);
  const [format, setFormat] = useState<OutputFormat>('keep');
  const [maxWidth, setMaxWidth] = useState<string | number>('');
  const [maxHeight, setMaxHeight] = useState<string | number>('');
  const [animated, setAnimated] = useState(false);
  const [webhookUrl, setWebhookUrl] = useState('');
  const [missing, setMissing] = useState<string | null>(null);
  const [qualityMissing, setQualityMissing] = useState(false);
  const qualityValue = whole(quality);

  const start = useCallback(
    async (chosen: Source, files: File[], operations: Operations, webhook: string) => {
      const options = { operations, webhookUrl: webhook };
      const batch =
        chosen === 'csv'
          ? await createCsvBatch(files[0] as File, options)
          : await createUploadBatch(files, options);
      navigate(`/images/batches/${encodeURIComponent(batch.request_id)}`);
    },
    [navigate],
  );
  const submission = useSubmit(start);
  const fieldErrors = submission.fieldErrors;
  const { reset } = submission;

  const chooseCsv = (files: File[]) => {
    setCsv(files[0] ?? null);
    setMissing(null);
    reset();
  };

  const addImages = (files: File[]) => {
    setImages((current) => {
      const seen = new Set(current.map(fileKey));
      return [...current, ...files.filter((f) => !seen.has(fileKey(f)))];
    });
    setMissing(null);
    reset();
  };

  async function submit(event: FormEvent) {
    event.preventDefault();
    const files = source === 'csv' ? (csv ? [csv] : []) : images;
    if (files.length === 0) {
      setMissing(source === 'csv' ? 'Choose a CSV file first.' : 'Add at least one image first.');
      return;
    }
    if (source === 'upload' && files.length > MAX_UPLOAD_FILES) {
      setMissing(`At most ${MAX_UPLOAD_FILES} images per batch; remove ${files.length - MAX_UPLOAD_FILES}.`);
      return;
    }
    setMissing(null);
    if (qualityValue === undefined) {
      setQualityMissing(true);
      return;
    }
    const operations: Operations = { quality: qualityValue, format };
    const width = whole(maxWidth);
    const height = whole(maxHeight);
    if (width) operations.max_width = width;
    if (height) operations.max_height = height;
    if (animated) operations.animated = true;
    await submission.run(source, files, operations, webhookUrl);
  }

  const fileError = missing ?? (source === 'csv' ? fieldErrors.file : fieldErrors.files) ?? null;

  return (
    <Stack gap="lg">
      <div>
        <Anchor component={Link} to="/images" size="sm">
          ← All batches
        </Anchor>
        <Title order={1} mt={4}>
          New image batch
        </Title>
        <Text c="dimmed" size="sm">
          Images are fetched and processed in the background; you can follow the progress on the
          next page.
        </Text>
      </div>

      <form onSubmit={(event) => void submit(event)} noValidate aria-label="New image batch">
        <Stack gap="lg">
          <Card withBorder padding="lg" component="section" aria-labelledby="new-batch-images">
            <Stack gap="md">
              <Title order={2} size="h4" id="new-batch-images">
                Images
              </Title>
              <SegmentedControl
                value={source}
                onChange={(value) => {
                  setSource(value as Source);
                  setMissing(null);
                  reset();
                }}
                data={[
                  { value: 'csv', label: 'CSV of image URLs' },
                  { value: 'upload', label: 'Upload image files' },
                ]}
                aria-label="What to process"
                fullWidth
                maw={460}
              />
              {source === 'csv' ? (
                <>
                  <FileDrop
                    key="csv"
                    label="Choose a CSV file"
                    hint="Columns: S. No., Product Name, Input Image Urls (comma-separated URLs). UTF-8."
                    accept=".csv,text/csv"
                    onFiles={chooseCsv}
                    disabled={submission.pending}
                    error={fileError}
                  />
                  {csv ? (
                    <Group gap="xs" data-testid="chosen-csv">
                      <Text size="sm">
                        Chosen: <strong>{csv.name}</strong> ({formatBytes(csv.size)})
                      </Text>
                      <Button
                        variant="subtle"
                        size="compact-sm"
                        onClick={() => chooseCsv([])}
                        disabled={submission.pending}
                      >
                        Remove
                      </Button>
                    </Group>
                  ) : null}
                </>
              ) : (
                <>
                  <FileDrop
                    key="upload"
                    label="Choose image files"
                    hint={`JPEG, PNG, WebP, GIF, AVIF or TIFF; up to ${MAX_UPLOAD_FILES} files.`}
                    accept={IMAGE_TYPES}
                    multiple
                    onFiles={addImages}
                    disabled={submission.pending}
                    error={fileError}
                  />
                  {images.length > 0 ? (
                    <Stack gap={4}>
                      <Group justify="space-between">
                        <Text size="sm" fw={500}>
                          {images.length} image{images.length === 1 ? '' : 's'},{' '}
                          {formatBytes(images.reduce((sum, f) => sum + f.size, 0))}
                        </Text>
                        <Button
                          variant="subtle"
                          size="compact-sm"
                          onClick={() => setImages([])}
                          disabled={submission.pending}
                        >
                          Remove all
                        </Button>
                      </Group>
                      <List size="sm" spacing={2} aria-label="Chosen images" data-testid="chosen-images">
                        {images.map((file) => (
                          <List.Item key={fileKey(file)}>
                            <Group gap="xs" wrap="nowrap">
                              <Text size="sm" className="break-anywhere">
                                {file.name} ({formatBytes(file.size)})
                              </Text>
                              <ActionIcon
                                variant="subtle"
                                color="gray"
                                size="sm"
                                aria-label={`Remove ${file.name}`}
                                disabled={submission.pending}
                                onClick={() =>
                                  setImages((current) => current.filter((f) => fileKey(f) !== fileKey(file)))
                                }
                              >
                                ×
                              </ActionIcon>
                            </Group>
                          </List.Item>
                        ))}
                      </List>
                    </Stack>
                  ) : null}
                </>
              )}
            </Stack>
          </Card>

          <Card withBorder padding="lg" component="section" aria-labelledby="new-batch-processing">
            <Stack gap="md">
              <Title order={2} size="h4" id="new-batch-processing">
                Processing
              </Title>
              <SimpleGrid cols={{ base: 1, sm: 2 }} spacing="lg">
                <Stack gap={6}>
                  <NumberInput
                    label="Quality"
                    description="1–100, for JPEG, WebP and AVIF output. PNG is always lossless."
                    min={1}
                    max={100}
                    allowDecimal={false}
                    clampBehavior="strict"
                    value={quality}
                    onChange={(value) => {
                      setQuality(value);
                      setQualityMissing(false);
                    }}
                    error={qualityMissing ? 'Enter a quality from 1 to 100.' : fieldErrors.quality}
                  />
                  <Slider
                    min={1}
                    max={100}
                    value={qualityValue ?? DEFAULT_QUALITY}
                    onChange={(value) => {
                      setQuality(value);
                      setQualityMissing(false);
                    }}
                    thumbLabel="Quality slider"
                    marks={[{ value: 25 }, { value: 50 }, { value: 75 }]}
                    mt={4}
                  />
                </Stack>
                <NativeSelect
                  label="Output format"
                  data={FORMAT_CHOICES}
                  value={format}
                  onChange={(event) => setFormat(event.currentTarget.value as OutputFormat)}
                  error={fieldErrors.format}
                />
                <NumberInput
                  label="Max width (px)"
                  description="Optional. Larger images shrink to fit; smaller ones are not enlarged."
                  placeholder="Keep"
                  min={1}
                  max={MAX_DIMENSION}
                  allowDecimal={false}
                  allowNegative={false}
                  value={maxWidth}
                  onChange={setMaxWidth}
                  error={fieldErrors.max_width}
                />
                <NumberInput
                  label="Max height (px)"
                  description="Optional. The aspect ratio is always kept."
                  placeholder="Keep"
                  min={1}
                  max={MAX_DIMENSION}
                  allowDecimal={false}
                  allowNegative={false}
                  value={maxHeight}
                  onChange={setMaxHeight}
                  error={fieldErrors.max_height}
                />
              </SimpleGrid>
              <Checkbox
                label="Keep every frame of animated images (GIF, WebP)"
                description="Otherwise only the first frame is kept."
                checked={animated}
                onChange={(event) => setAnimated(event.currentTarget.checked)}
                error={fieldErrors.animated}
              />
            </Stack>
          </Card>

          <Card withBorder padding="lg" component="section" aria-labelledby="new-batch-notification">
            <Stack gap="md">
              <Title order={2} size="h4" id="new-batch-notification">
                Notification
              </Title>
              <TextInput
                label="Webhook URL"
                description="Optional. Receives a signed POST when the batch is done."
                placeholder="https://example.com/hooks/opsdeck"
                type="url"
                inputMode="url"
                autoComplete="url"
                value={webhookUrl}
                onChange={(event) => setWebhookUrl(event.currentTarget.value)}
                error={fieldErrors.webhook_url}
                maw={560}
              />
            </Stack>
          </Card>

          {submission.error ? <SubmitError error={submission.error} /> : null}

          <Group>
            <Button type="submit" loading={submission.pending}>
              Start batch
            </Button>
            <Button component={Link} to="/images" variant="default">
              Cancel
            </Button>
          </Group>
        </Stack>
      </form>
    </Stack>
  );
}
