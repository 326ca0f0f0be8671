import { Alert, List, Stack, Table, Text } from '@mantine/core';
import type { ApiError, ErrorDetail } from '../../api/errors';

export interface RowProblem {
  row: number;
  column: string | null;
  value: string | null;
  message: string;
}

/** The CSV's bad rows from a 422 body: `{"row", "column", "value", "message"}` each. */
export function rowProblems(details: ErrorDetail[]): RowProblem[] {
  return details
    .filter((d) => typeof d.row === 'number' && typeof d.message === 'string')
    .map((d) => ({
      row: d.row as number,
      column: typeof d.column === 'string' ? d.column : null,
      value: typeof d.value === 'string' ? d.value : null,
      message: d.message as string,
    }));
}

/** Per-file problems (e.g. a 415 naming each upload that is not an image). */
function fileProblems(details: ErrorDetail[]): string[] {
  return details
    .filter((d) => typeof d.file === 'string' && typeof d.message === 'string')
    .map((d) => d.message as string);
}

function title(error: ApiError): string {
  switch (error.status) {
    case 413:
      return 'The file is too large';
    case 415:
      return 'This kind of file is not accepted';
    case 422:
      return 'The batch was not started';
    case 429:
      return 'Too many requests';
    default:
      return 'The batch was not started';
  }
}

/**
 * A refused new batch, as the server explained it; for a bad CSV, every bad row in a table so
 * the file can be fixed in one go.
 */
export function SubmitError({ error }: { error: ApiError }) {
  const rows = rowProblems(error.details);
  const files = fileProblems(error.details);
  return (
    <Alert color="red" variant="light" title={title(error)} role="alert" data-testid="submit-error">
      <Stack gap="sm">
        <Text size="sm">
          {error.message}
          {error.retryAfter ? ` Try again in ${error.retryAfter} seconds.` : null}
        </Text>
        {rows.length > 0 ? (
          <Table.ScrollContainer minWidth={560}>
            <Table
              withTableBorder
              verticalSpacing={4}
              fz="sm"
              aria-label="Problems in the CSV file"
              data-testid="csv-problems"
            >
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Line</Table.Th>
                  <Table.Th>Column</Table.Th>
                  <Table.Th>Value</Table.Th>
                  <Table.Th>Problem</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {rows.map((problem, index) => (
                  <Table.Tr key={`${problem.row}-${index}`}>
                    <Table.Td>{problem.row}</Table.Td>
                    <Table.Td>{problem.column ?? '—'}</Table.Td>
                    <Table.Td maw={280} className="break-anywhere" ff={problem.value ? 'monospace' : undefined}>
                      {problem.value ?? '—'}
                    </Table.Td>
                    <Table.Td>{problem.message}</Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          </Table.ScrollContainer>
        ) : null}
        {files.length > 0 ? (
          <List size="sm" aria-label="Files refused">
            {files.map((message, index) => (
              <List.Item key={index}>{message}</List.Item>
            ))}
          </List>
        ) : null}
      </Stack>
    </Alert>
  );
}
